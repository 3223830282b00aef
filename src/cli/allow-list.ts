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

/** --allow-priority: `all`, or peer ids, each checked; undefined where it is not given (then --allow-submit's peers may use high). */
export function readPriorityList (values: string[] | undefined): Set<string> | 'all' | undefined {
  if (values === undefined) return undefined
  if (values.includes('all')) {
    if (values.length > 1) throw new InvalidParameterError(`--allow-priority all lets everyone use --priority high: give it alone, not with peer ids (${values.filter(v => v !== 'all').join(', ')})`)
    return 'all'
  }
  for (const id of values) {
    try {
      peerIdFromString(id)
    } catch {
      throw new InvalidParameterError(`Expected a peer id or all for --allow-priority but received '${id}'`)
    }
  }
  return new Set(values)
}
