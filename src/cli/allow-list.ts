import { readFile } from 'node:fs/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { InvalidParameterError } from '../common/errors.ts'

/** The peer ids of --allow-submit and --allow-submit-file, each checked; undefined where neither is given (anyone may submit). */
export async function readAllowList (ids: string[] | undefined, file: string | undefined): Promise<Set<string> | undefined> {
  if (ids === undefined && file === undefined) return undefined
  const all = [...(ids ?? [])]
  if (file !== undefined) {
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => { throw new InvalidParameterError(`cannot read --allow-submit-file ${file}: ${err.code ?? err.message}`) })
    all.push(...text.split('\n').map(l => l.replace(/#.*/, '').trim()).filter(l => l !== ''))
  }
  for (const id of all) {
    try {
      peerIdFromString(id)
    } catch {
      throw new InvalidParameterError(`Expected a peer id for --allow-submit but received '${id}'`)
    }
  }
  return new Set(all)
}
