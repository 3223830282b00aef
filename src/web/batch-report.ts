import { once } from 'node:events'
import { createReadStream, createWriteStream } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Zip, ZipPassThrough } from 'fflate'

/** One file of a page's batch, as the page and the zip's report list it. */
export interface FileState {
  /** The name it was uploaded under. */
  name: string
  state: 'waiting' | 'done' | 'failed'
  /** Why it failed, one line. */
  reason?: string
  /** Its output's name in the zip. */
  output?: string
  /** Its before and after are at the job's thumb/in-<n> and thumb/out-<n> (a batch's first images only). */
  preview?: boolean
}

/** The report a batch's zip carries: one line a file, then the same as JSON for scripts. */
export function reportText (title: string, files: FileState[]): string {
  const failed = files.filter(f => f.state !== 'done').length
  const lines = [`tileswarm: ${title}`, `${files.length - failed} of ${files.length} images processed${failed > 0 ? `, ${failed} failed` : ''}`, '']
  for (const f of files) lines.push(`${f.state === 'done' ? 'done  ' : 'FAILED'}  ${f.name}${f.output !== undefined ? ` -> ${f.output}` : ''}${f.reason !== undefined ? `: ${f.reason}` : ''}`)
  return `${lines.join('\n')}\n`
}

/** A batch's outputs (a folder, flat) and its report, zipped into `path` (stored: images are compressed already). */
export async function zipWithReport (folder: string, path: string, report: { text: string, json: unknown }): Promise<void> {
  const out = createWriteStream(path, { flags: 'wx' })
  let failure: Error | undefined
  const zip = new Zip((err, chunk, final) => {
    if (err !== null) { failure ??= err; return }
    out.write(chunk)
    if (final) out.end()
  })
  const add = async (name: string, data: AsyncIterable<Uint8Array> | Uint8Array): Promise<void> => {
    const entry = new ZipPassThrough(name)
    zip.add(entry)
    if (data instanceof Uint8Array) {
      entry.push(data, true)
    } else {
      for await (const chunk of data) {
        entry.push(chunk as Uint8Array)
        if (out.writableNeedDrain) await once(out, 'drain')
      }
      entry.push(new Uint8Array(0), true)
    }
  }
  const names = (await readdir(folder).catch(() => [] as string[])).sort()
  for (const name of names) await add(name, createReadStream(join(folder, name)))
  await add('report.txt', Buffer.from(report.text))
  await add('report.json', Buffer.from(`${JSON.stringify(report.json, null, 2)}\n`))
  const closed = once(out, 'close')
  zip.end()
  await closed
  if (failure !== undefined) throw failure
}
