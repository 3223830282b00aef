import { existsSync, rmSync } from 'node:fs'
import { open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { InvalidImageError, LimitExceededError, OutputError } from '../common/errors.ts'
import type { OutputFormat, Step } from '../imaging/index.ts'
import { checkRoom, freeBytes, noRoom } from './output-room.ts'

function why (err: unknown, path: string): string {
  const code = (err as NodeJS.ErrnoException).code
  switch (code) {
    case 'ENOENT': return existsSync(dirname(path)) ? `cannot create a file in ${dirname(path)}` : `directory ${dirname(path)} does not exist`
    case 'ENOTDIR': return `${dirname(path)} is not a directory`
    case 'EACCES': case 'EPERM': return 'permission denied'
    case 'EROFS': return 'the file system is read-only'
    case 'ENOSPC': return 'no space left on the device'
    case 'EISDIR': return 'it is a directory'
    default: return code ?? (err as Error).message
  }
}

/** Partial files still open, removed if the process is interrupted. */
const partials = new Set<string>()

/** A partial file this process is done with (moved into place or removed): an interrupt leaves it be. */
export function forgetPartial (path: string): void {
  partials.delete(path)
}

export { createPartial }

/** Partial files being created or moved into place now: an interrupt waits for them, so that none appears after its sweep. */
const inFlight = new Set<Promise<unknown>>()
/** Interrupted: no partial file is started any more. */
let stopped = false

async function tracked<T> (work: Promise<T>): Promise<T> {
  inFlight.add(work)
  try {
    return await work
  } finally {
    inFlight.delete(work)
  }
}

/**
 * An interrupt: no new partial file is started; once those being created or
 * moved into place are done (or `ms` has passed) and what waited on them has
 * run, removePartials finds them all and the outputs on disk are those
 * reported written.
 */
export async function stopWriting (ms = 2000): Promise<void> {
  stopped = true
  let timer: NodeJS.Timeout | undefined
  await Promise.race([Promise.allSettled([...inFlight]), new Promise(resolve => { timer = setTimeout(resolve, ms) })])
  clearTimeout(timer)
  await new Promise(resolve => setImmediate(resolve))
}

/** Creates a partial file, tracked from before it exists. */
async function createPartial<T> (path: string, create: () => Promise<T>): Promise<T> {
  if (stopped) throw new OutputError(`not writing ${path}: interrupted`)
  partials.add(path)
  try {
    return await tracked(create())
  } catch (err) {
    partials.delete(path)
    throw err
  }
}

/** Removes every partial file this process left (a signal handler's last act). */
export function removePartials (): void {
  for (const path of partials) rmSync(path, { force: true })
  partials.clear()
}

/**
 * Where a result goes. The file beside the target is created at once, before
 * any work, so a place that cannot be written fails then; the result is
 * written into it and renamed into place, so a reader never sees half a file.
 * Errors name the user's path, not the hidden one.
 */
export class OutputFile {
  readonly path: string
  private readonly partial: string
  private handle: FileHandle | undefined

  private constructor (path: string, partial: string, handle: FileHandle) {
    this.path = path
    this.partial = partial
    this.handle = handle
  }

  static async create (path: string): Promise<OutputFile> {
    const existing = await stat(path).catch(() => undefined)
    if (existing?.isDirectory() === true) throw new OutputError(`cannot write ${path}: it is a directory`)
    const partial = join(dirname(path), `.${basename(path)}.${process.pid}.partial`)
    try {
      const handle = await createPartial(partial, async () => await open(partial, 'wx', 0o644))
      return new OutputFile(path, partial, handle)
    } catch (err) {
      throw new OutputError(`cannot write ${path}: ${why(err, path)}`)
    }
  }

  async commit (bytes: Uint8Array): Promise<void> {
    try {
      await tracked((async () => {
        await this.handle!.writeFile(bytes)
        await this.handle!.close()
        this.handle = undefined
        await rename(this.partial, this.path)
        partials.delete(this.partial)
      })())
    } catch (err) {
      await this.discard()
      // Full: said as the check before the job says it, with what it needed and what there was.
      const free = (err as NodeJS.ErrnoException).code === 'ENOSPC' ? await freeBytes(this.path) : undefined
      if (free !== undefined) throw noRoom(this.path, bytes.length, free, false)
      throw new OutputError(`cannot write ${this.path}: ${why(err, this.path)}`)
    }
  }

  /** Refuses, before any work, a result that could not fit here (when its size can be bounded). */
  async checkRoom (input: Buffer, steps: readonly Step[], format: OutputFormat): Promise<void> {
    await checkRoom(this.path, input, steps, format)
  }

  /** Nothing is written: the partial file goes. */
  async discard (): Promise<void> {
    await this.handle?.close().catch(() => {})
    this.handle = undefined
    await rm(this.partial, { force: true })
    partials.delete(this.partial)
  }
}

export async function readInput (path: string, maxBytes: number): Promise<Buffer> {
  let size: number
  try {
    const s = await stat(path)
    if (!s.isFile()) throw new InvalidImageError(`cannot read ${path}: not a file`)
    size = s.size
  } catch (err) {
    if (err instanceof InvalidImageError) throw err
    const code = (err as NodeJS.ErrnoException).code
    throw new InvalidImageError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(code)}`)
  }
  if (size > maxBytes) throw new LimitExceededError(`${path} is ${size} bytes, over the upload limit of ${maxBytes} bytes (--max-upload-bytes)`)
  return await readFile(path)
}
