import { createWriteStream, type WriteStream } from 'node:fs'
import { once } from 'node:events'
import { glob, mkdir, readdir, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { Zip, ZipPassThrough } from 'fflate'
import { InvalidParameterError, OutputError } from '../common/errors.ts'
import { formatFromPath, type OutputFormat } from '../imaging/index.ts'
import { semaphore } from '../imaging/pixels/gate.ts'
import { OutputFile, createPartial, forgetPartial } from './files.ts'

/** Files a folder or a glob contributes: what sharp reads, by extension. */
const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.avif', '.gif', '.heic', '.heif'])

const EXTENSION_OF: Record<OutputFormat, string> = { jpeg: '.jpg', png: '.png', webp: '.webp', tiff: '.tif', avif: '.avif' }

/** One image of a batch: where it is read, where its output goes (relative to the output folder or zip), in what format. */
export interface BatchItem {
  input: string
  output: string
  format: OutputFormat
}

export interface BatchPlan {
  items: BatchItem[]
  /** Files a folder or glob held that are left out: not images (by extension), or hidden. */
  leftOut: string[]
  /** Subfolders left out (no --recursive). */
  folders: string[]
  target: { kind: 'dir' | 'zip', path: string }
}

const isGlob = (text: string): boolean => /[*?[\]{}]/.test(text)

/** More than one input, a folder or a glob: a batch, not one image. */
export async function isBatchInput (inputs: string[]): Promise<boolean> {
  if (inputs.length !== 1) return inputs.length > 1
  const only = inputs[0]!
  if (isGlob(only) && (await stat(only).catch(() => undefined)) === undefined) return true
  return (await stat(only).catch(() => undefined))?.isDirectory() === true
}

async function walk (dir: string, recursive: boolean, found: string[], leftOut: string[], folders: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => { throw new InvalidParameterError(`cannot read the folder ${dir}: ${err.code ?? err.message}`) })
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  for (const e of entries) {
    const path = join(dir, e.name)
    if (e.isDirectory()) {
      if (e.name.startsWith('.')) continue
      if (recursive) await walk(path, recursive, found, leftOut, folders)
      else folders.push(path)
    } else if (e.isFile()) {
      if (!e.name.startsWith('.') && IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())) found.push(path)
      else leftOut.push(path)
    }
  }
}

function isInside (path: string, folder: string): boolean {
  const rel = relative(folder, path)
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel))
}

/**
 * Makes a folder and those above it. Node's own recursive mkdir never
 * settles under /proc (it retries a parent that exists for ever), so a
 * folder whose parent exists is made alone, and a refusal is final.
 */
async function makeFolder (dir: string): Promise<void> {
  try {
    await mkdir(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST' && (await stat(dir)).isDirectory()) return
    const parent = dirname(dir)
    if (code !== 'ENOENT' || parent === dir || (await stat(parent).catch(() => undefined)) !== undefined) {
      throw new OutputError(`cannot create the folder ${dir}: ${code === 'ENOENT' ? `no folder can be made in ${parent}` : code === 'EEXIST' ? 'a file is in the way' : code ?? (err as Error).message}`)
    }
    await makeFolder(parent)
    await makeFolder(dir)
  }
}

/** The folder a glob's matches are named relative to: its part before the first wildcard. */
function globBase (pattern: string): string {
  const parts = pattern.split(/[/\\]/)
  const fixed = parts.slice(0, parts.findIndex(isGlob))
  return fixed.length === 0 ? '.' : fixed.join(sep) || sep
}

/**
 * Every image the inputs name: files as given, a folder's images (its
 * subfolders too with `recursive`), a glob's matches; each output named as
 * its input relative to the folder or glob it came from (the tree mirrored),
 * with the extension of `format`, or kept. Two inputs that would write the
 * same output are refused before anything runs.
 */
export async function planBatch (inputs: string[], out: string, options: { recursive: boolean, format?: OutputFormat }): Promise<BatchPlan> {
  const found: Array<{ input: string, base: string }> = []
  const leftOut: string[] = []
  const folders: string[] = []
  for (const input of inputs) {
    const s = await stat(input).catch(() => undefined)
    if (s === undefined && isGlob(input)) {
      const matches: string[] = []
      for await (const m of glob(input)) matches.push(m)
      matches.sort()
      const images = []
      for (const m of matches) if ((await stat(m).catch(() => undefined))?.isFile() === true) images.push(m)
      if (images.length === 0) throw new InvalidParameterError(`no file matches ${input}`)
      for (const m of images) {
        if (IMAGE_EXTENSIONS.has(extname(m).toLowerCase())) found.push({ input: m, base: globBase(input) })
        else leftOut.push(m)
      }
    } else if (s === undefined) {
      throw new InvalidParameterError(`cannot read ${input}: no such file or folder`)
    } else if (s.isDirectory()) {
      const files: string[] = []
      await walk(input, options.recursive, files, leftOut, folders)
      for (const f of files) found.push({ input: f, base: input })
    } else {
      // A file named on its own is taken whatever its extension: sharp says if it is no image.
      found.push({ input, base: dirname(input) })
    }
  }
  if (found.length === 0) throw new InvalidParameterError(`no images in ${inputs.join(', ')}${leftOut.length > 0 ? ` (${leftOut.length} other file${leftOut.length === 1 ? '' : 's'}; images end ${[...IMAGE_EXTENSIONS].join(' ')})` : ''}${folders.length > 0 ? `; ${folders.length} subfolder${folders.length === 1 ? '' : 's'} left out: -r takes them in` : ''}`)
  const target = { kind: out.toLowerCase().endsWith('.zip') ? 'zip' as const : 'dir' as const, path: out }
  // An output folder that is an input folder (or, with -r, inside one): a second run (--skip-existing after Ctrl-C) would take the outputs in as inputs.
  for (const input of inputs) {
    if (target.kind !== 'dir' || (await stat(input).catch(() => undefined))?.isDirectory() !== true) continue
    if (resolve(out) === resolve(input) || (options.recursive && isInside(resolve(out), resolve(input)))) {
      throw new InvalidParameterError(`the output folder ${out} is ${resolve(out) === resolve(input) ? 'the' : 'inside the'} input folder ${input}: the next run would take its outputs in as inputs; give -o a folder outside it`)
    }
  }
  if (target.kind === 'zip' && found.length > ZIP_MAX_ENTRIES) throw new InvalidParameterError(`${found.length} images are more than a .zip holds here (${ZIP_MAX_ENTRIES}); write them to a folder`)
  const items: BatchItem[] = []
  const byOutput = new Map<string, string>()
  const seen = new Set<string>()
  for (const { input, base } of found) {
    // The same file named twice (a file and its folder) is one image.
    const key = resolve(input)
    if (seen.has(key)) continue
    seen.add(key)
    const kept = formatFromPath(input)
    const format = options.format ?? kept ?? 'png'
    const rel = relative(base, input).split(sep).join('/')
    const stem = rel.slice(0, rel.length - extname(rel).length)
    const output = options.format === undefined && kept !== undefined ? rel : `${stem}${EXTENSION_OF[format]}`
    const clash = byOutput.get(output)
    if (clash !== undefined) throw new InvalidParameterError(`${clash} and ${input} would both be written to ${output}${options.format !== undefined ? ' (--format gives them one extension)' : ''}; rename one, or submit them in two batches`)
    byOutput.set(output, input)
    items.push({ input, output, format })
  }
  if (target.kind === 'dir') await refuseOverwritingInputs(items, out)
  return { items, leftOut, folders, target }
}

/** Files looked at at once: one at a time, a folder of photos waits on every file's round trip (a network disk, a busy process). */
const STATS_AT_ONCE = 16

/** Never an output over its input, whatever the path says (a link, a case-blind disk): the same file is the same device and inode. */
async function refuseOverwritingInputs (items: BatchItem[], out: string): Promise<void> {
  const gate = semaphore(STATS_AT_ONCE)
  const own = await Promise.all(items.map(async ({ input, output }) => await gate(async () => {
    if (resolve(out, output) === resolve(input)) return true
    const there = await stat(resolve(out, output)).catch(() => undefined)
    const here = there !== undefined ? await stat(input).catch(() => undefined) : undefined
    return there !== undefined && here !== undefined && there.dev === here.dev && there.ino === here.ino
  })))
  const first = items.find((_, i) => own[i])
  if (first !== undefined) throw new InvalidParameterError(`${first.input} would be overwritten by its own output; give -o another folder`)
}

/** Where a batch's outputs go: a folder (each output its own file, written whole or not at all) or a zip. */
export interface BatchSink {
  /** The output is there already (what --skip-existing skips). */
  exists: (output: string) => Promise<boolean>
  write: (output: string, bytes: Uint8Array) => Promise<void>
  /** The batch is over: a zip is finished and moved into place. */
  close: () => Promise<void>
  /** Interrupted: a zip not finished goes. */
  discard: () => Promise<void>
  /** Where `output` is, for the user. */
  describe: (output: string) => string
}

export async function openSink (target: BatchPlan['target']): Promise<BatchSink> {
  return target.kind === 'zip' ? await ZipSink.create(target.path) : await dirSink(target.path)
}

async function dirSink (dir: string): Promise<BatchSink> {
  const s = await stat(dir).catch(() => undefined)
  if (s !== undefined && !s.isDirectory()) throw new OutputError(`cannot write the batch to ${dir}: it is a file; give a folder (or a .zip)`)
  await makeFolder(dir)
  return {
    exists: async output => (await stat(join(dir, output)).catch(() => undefined))?.isFile() === true,
    write: async (output, bytes) => {
      const path = join(dir, output)
      await makeFolder(dirname(path))
      const file = await OutputFile.create(path)
      await file.commit(bytes)
    },
    close: async () => {},
    discard: async () => {},
    describe: output => join(dir, output),
  }
}

/** What a zip without its 64-bit extension holds: fflate writes none. */
const ZIP_MAX_ENTRIES = 65_535
const ZIP_MAX_BYTES = 0xffff_ffff - 64 * 1024 * 1024

/** A zip written as outputs arrive (stored, not deflated: images are compressed already), moved into place when complete. */
class ZipSink implements BatchSink {
  private readonly path: string
  private readonly partial: string
  private readonly zip: Zip
  private readonly stream: WriteStream
  private readonly names = new Set<string>()
  private bytes = 0
  private failure: Error | undefined
  private readonly ended: Promise<void>

  private constructor (path: string, partial: string, stream: WriteStream) {
    this.path = path
    this.partial = partial
    this.stream = stream
    let endedResolve!: () => void
    this.ended = new Promise(resolve => { endedResolve = resolve })
    this.zip = new Zip((err, chunk, final) => {
      if (err !== null) { this.failure ??= err; return }
      this.stream.write(chunk)
      if (final) this.stream.end(endedResolve)
    })
    stream.on('error', err => { this.failure ??= err })
  }

  static async create (path: string): Promise<ZipSink> {
    const partial = join(dirname(path), `.${basename(path)}.${process.pid}.partial`)
    const stream = await createPartial(partial, async () => {
      const made = createWriteStream(partial, { flags: 'wx' })
      await new Promise<void>((resolve, reject) => {
        made.once('open', () => { resolve() })
        made.once('error', err => { reject(new OutputError(`cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)) })
      })
      return made
    })
    return new ZipSink(path, partial, stream)
  }

  async exists (output: string): Promise<boolean> { return this.names.has(output) }

  async write (output: string, bytes: Uint8Array): Promise<void> {
    if (this.failure !== undefined) throw new OutputError(`cannot write ${this.path}: ${this.failure.message}`)
    if (this.bytes + bytes.length + 1024 > ZIP_MAX_BYTES || this.names.size >= ZIP_MAX_ENTRIES) throw new OutputError(`cannot write ${this.path}: a .zip holds at most 4 GB and ${ZIP_MAX_ENTRIES} images here; write the batch to a folder`)
    const entry = new ZipPassThrough(output)
    this.zip.add(entry)
    entry.push(bytes, true)
    this.names.add(output)
    this.bytes += bytes.length + 128 + 2 * Buffer.byteLength(output)
    if (this.stream.writableNeedDrain) await once(this.stream, 'drain')
  }

  async close (): Promise<void> {
    this.zip.end()
    await this.ended
    if (this.failure !== undefined) throw new OutputError(`cannot write ${this.path}: ${this.failure.message}`)
    await rename(this.partial, this.path)
    forgetPartial(this.partial)
  }

  async discard (): Promise<void> {
    this.zip.terminate()
    this.stream.destroy()
    await rm(this.partial, { force: true })
    forgetPartial(this.partial)
  }

  describe (output: string): string { return `${this.path}:${output}` }
}
