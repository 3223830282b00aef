import { mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { FileState } from './batch-report.ts'
import { WEB_BATCH_PREVIEWS, WEB_THUMB_PX, WEB_THUMBS_KEPT } from '../common/defaults.ts'
import { sharpLib } from '../imaging/pixels/sharp-lib.ts'

/**
 * A small WebP of an image, for the page's previews and its tile map: made
 * here once (whatever the image's format: TIFF and AVIF too, which browsers
 * may not show) and kept beside it; a browser never loads the full-size file
 * to show it. Returns the thumbnail's path, made once however often asked.
 */
export class Thumbnails {
  private readonly made = new Map<string, Promise<string>>()

  /** A thumbnail already asked for (made, or being made), or on disk; undefined if none, or if it could not be made. */
  async asked (path: string): Promise<string | undefined> {
    const made = this.made.get(path)
    if (made !== undefined) return await made.catch(() => undefined)
    return await stat(path).then(() => path, () => undefined)
  }

  async of (source: string | Buffer, path: string): Promise<string> {
    let made = this.made.get(path)
    if (made === undefined) {
      made = make(source, path)
      this.made.set(path, made)
      // Kept for the jobs the page keeps (their files go with them): the oldest names go first.
      if (this.made.size > WEB_THUMBS_KEPT) this.made.delete(this.made.keys().next().value!)
      // A failure is said once, then may be tried again.
      made.catch(() => { this.made.delete(path) })
    }
    return await made
  }
}

async function make (source: string | Buffer, path: string): Promise<string> {
  if (await stat(path).then(() => true, () => false)) return path
  // The image was checked against --max-pixels when it came, and a result is this peer's own.
  await sharpLib()(source, { failOn: 'none', limitInputPixels: false })
    .rotate()
    .resize(WEB_THUMB_PX, WEB_THUMB_PX, { fit: 'inside', withoutEnlargement: true })
    .webp({ quality: 80 })
    .toFile(path)
  return path
}

/** Before and after of a batch's first images done, made while their files are still in the job's folder (`in/`, `out/`). */
export async function batchPreviews (thumbs: Thumbnails, dir: string, files: FileState[], inputs: Map<FileState, string>): Promise<void> {
  await mkdir(join(dir, 'thumbs'), { recursive: true })
  const done = files.map((f, i) => ({ f, i })).filter(({ f }) => f.state === 'done' && f.output !== undefined && inputs.has(f)).slice(0, WEB_BATCH_PREVIEWS)
  for (const { f, i } of done) {
    try {
      await thumbs.of(join(dir, 'in', inputs.get(f)!), join(dir, 'thumbs', `in-${i}.webp`))
      await thumbs.of(join(dir, 'out', f.output!), join(dir, 'thumbs', `out-${i}.webp`))
      f.preview = true
    } catch {
      // No preview for this one: the list says its outcome all the same.
    }
  }
}
