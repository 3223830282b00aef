import { statfs } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { OutputError } from '../common/errors.ts'
import { sizeText } from '../common/units.ts'
import { planJob, rawByteLength, readImageHeader, type OutputFormat, type Step } from '../imaging/index.ts'

/**
 * What an encoded image may take at most, per its raw bytes: PNG and TIFF
 * store the pixels deflated (no worse than raw, plus a byte a row and the
 * deflate blocks' few bytes); the lossy codecs stay well under raw at any
 * quality, bounded generously here. Plus room for headers and metadata.
 */
const WORST_PER_RAW_BYTE: Record<OutputFormat, number> = { png: 1.01, tiff: 1.01, jpeg: 1.5, webp: 1.5, avif: 1.5 }
const CONTAINER_BYTES = 256 * 1024

/** The most the job's result can take, from its input's header and its pipeline; undefined where that cannot be told (a header this client cannot read). */
export async function resultBound (input: Buffer, steps: readonly Step[], format: OutputFormat): Promise<number | undefined> {
  try {
    const header = await readImageHeader(input)
    const plan = planJob(steps, { width: header.width, height: header.height, format: header.format })
    return Math.ceil(rawByteLength(plan.width, plan.height, plan.outputFormat) * (WORST_PER_RAW_BYTE[format] ?? 1.5)) + plan.height + CONTAINER_BYTES
  } catch {
    return undefined
  }
}

/** The free bytes of the folder `path` goes in, to an unprivileged writer; undefined where the system will not say. */
export async function freeBytes (path: string): Promise<number | undefined> {
  const s = await statfs(dirname(resolve(path))).catch(() => undefined)
  return s === undefined ? undefined : s.bavail * s.bsize
}

/** The one line for a result that does not fit: before the job (`may need`) or after it (`needs`). */
export function noRoom (path: string, needed: number, free: number, before: boolean): OutputError {
  return new OutputError(`cannot write ${path}: the result ${before ? 'may need up to' : 'needs'} ${sizeText(needed)} and ${dirname(resolve(path))} has ${sizeText(free)} free; free some space or give -o another folder`)
}

/** Refuses, before any work, a result that could not fit beside `path`. */
export async function checkRoom (path: string, input: Buffer, steps: readonly Step[], format: OutputFormat): Promise<void> {
  const needed = await resultBound(input, steps, format)
  if (needed === undefined) return
  const free = await freeBytes(path)
  if (free !== undefined && needed > free) throw noRoom(path, needed, free, true)
}
