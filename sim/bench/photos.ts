import { mkdir, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import sharp from 'sharp'
import { REPO } from '../processes.ts'

/**
 * `count` photos of 2-12 MP made from the samples (JPEG q90), once: kept in
 * the temp folder, the same folder every run. The benchmarks' batches.
 */
export async function photos (count: number, say: (line: string) => void): Promise<string> {
  const dir = join(tmpdir(), `tileswarm-batch-photos-v1-${count}`)
  const have = await readdir(dir).catch(() => [])
  if (have.length === count) return dir
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  const sources = [resolve(REPO, 'sim/samples/saw.jpg'), ...['flowers.jpeg', '4.webp', 'Landscape_5.jpg', 'low-contrast.jpg'].map(n => resolve(REPO, 'sim/samples/photos', n))]
  say(`making ${count} photos of 2-12 MP in ${dir} (once)`)
  let next = 0
  const make = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      const source = sources[i % sources.length]!
      const meta = await sharp(source).rotate().toBuffer({ resolveWithObject: true }).then(r => r.info)
      // Megapixels spread over 2-12 by a fixed stride: every run gets the same folder.
      const mp = 2 + 10 * (((i * 7919) % 1000) / 1000)
      const width = Math.round(Math.sqrt(mp * 1e6 * meta.width / meta.height))
      const height = Math.round(mp * 1e6 / width)
      await sharp(source).rotate().resize(width, height, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(join(dir, `photo-${String(i).padStart(4, '0')}.jpg`))
    }
  }
  await Promise.all([make(), make()])
  return dir
}
