import { constants } from 'node:fs'
import { access, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { InvalidImageError, LimitExceededError, OutputError } from '../errors.ts'

/** Fails before any work if the result could not be written there. */
export async function checkWritable (path: string): Promise<void> {
  const dir = dirname(path)
  try {
    const s = await stat(dir)
    if (!s.isDirectory()) throw new OutputError(`cannot write ${path}: ${dir} is not a directory`)
    await access(dir, constants.W_OK)
  } catch (err) {
    if (err instanceof OutputError) throw err
    throw new OutputError(`cannot write ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `directory ${dir} does not exist` : 'permission denied'}`)
  }
  try {
    if ((await stat(path)).isDirectory()) throw new OutputError(`cannot write ${path}: it is a directory`)
  } catch (err) {
    if (err instanceof OutputError) throw err
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

/** Writes beside the target, then renames: a reader never sees half a file. */
export async function writeAtomically (path: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.partial`)
  try {
    await writeFile(tmp, bytes)
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw new OutputError(`cannot write ${path}: ${(err as Error).message}`)
  }
}
