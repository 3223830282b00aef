import { readFile, writeFile } from 'node:fs/promises'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { NetworkError } from '../common/errors.ts'
import { lockHolder } from '../net/identity.ts'
import { flagFromEnvironment } from './env.ts'
import { DEFAULT_DATA_DIR } from './peer-flags.ts'

/** The data dir the systemd unit (deploy/tileswarm.service) gives its peer. */
export const SERVICE_DATA_DIR = '/var/lib/tileswarm'

/** The file a running peer says where it listens in, in its data dir. */
const RECORD_FILE = 'listening.json'

/** What a running peer records: who it is, and where a process on this machine reaches it (loopback first). */
export interface PeerRecord {
  pid: number
  peerId: string
  addrs: string[]
  /** Its swarm key's file (absolute): a command on this machine joins its private swarm with it. */
  swarmKey?: string
}

/** Records where this peer listens; the record goes when the process ends (a crash leaves it stale: its pid no longer holds the data dir). */
export async function recordPeer (dataDir: string, record: PeerRecord): Promise<void> {
  const path = join(dataDir, RECORD_FILE)
  await writeFile(path, JSON.stringify(record) + '\n', { mode: 0o644 })
  process.once('exit', () => { rmSync(path, { force: true }) })
}

/** The record in `dataDir`, if the peer that wrote it still runs there. */
export async function readPeerRecord (dataDir: string): Promise<PeerRecord | undefined> {
  const path = join(dataDir, RECORD_FILE)
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EACCES') throw new NetworkError(`cannot read ${path} (a peer's record of where it listens): run this as the peer's user (sudo), or give --peer`)
    return undefined
  })
  if (text === undefined) return undefined
  let record: Partial<PeerRecord>
  try {
    record = JSON.parse(text) as Partial<PeerRecord>
  } catch {
    return undefined
  }
  if (!Array.isArray(record.addrs) || record.addrs.length === 0 || typeof record.peerId !== 'string') return undefined
  // Stale: its process is gone (or another now holds the data dir).
  if (record.pid === undefined || await lockHolder(dataDir) !== record.pid) return undefined
  return { pid: record.pid, peerId: record.peerId, addrs: record.addrs.filter(a => typeof a === 'string'), ...(typeof record.swarmKey === 'string' ? { swarmKey: record.swarmKey } : {}) }
}

/** A command's --peer and --swarm-key, or else the peer running on this machine's addresses and key. */
export async function peerOrLocal (flags: { peer?: string[], swarmKey?: string }, otherwise?: string): Promise<string[]> {
  if (flags.peer !== undefined) return flags.peer
  const local = await localPeer(undefined, otherwise)
  flags.swarmKey ??= local.swarmKey
  return local.addrs
}

/** Where to look for a peer on this machine: TILESWARM_DATA_DIR if set, else the default data dir, then the service's. */
export function localDataDirs (): string[] {
  const given = flagFromEnvironment('data-dir')
  return given !== undefined && given !== '' ? [given] : [DEFAULT_DATA_DIR, SERVICE_DATA_DIR]
}

/** The peer running on this machine, for a command given no --peer; a one-line error where none runs. */
export async function localPeer (dataDirs = localDataDirs(), otherwise = 'give --peer'): Promise<PeerRecord> {
  for (const dir of dataDirs) {
    const record = await readPeerRecord(dir)
    if (record !== undefined) return record
  }
  throw new NetworkError(`no peer runs on this machine (data dir ${dataDirs[0]}); start one with \`tileswarm peer\` or ${otherwise}`)
}
