import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { TileswarmError } from '../errors.ts'

export class DataDirError extends TileswarmError {
  static override readonly name = 'DataDirError'
}

/** The peer's key lives in its data dir, so a restarted peer keeps its peer id. */
export async function loadOrCreateKey (dataDir: string): Promise<PrivateKey> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const path = join(dataDir, 'peer.key')
  try {
    return privateKeyFromProtobuf(await readFile(path))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new DataDirError(`cannot read the peer key ${path}: ${(err as Error).message}`)
  }
  const key = await generateKeyPair('Ed25519')
  await writeFile(path, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' })
  return key
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Lock files this process holds: a pid match alone may be a stale lock from an earlier process. */
const heldHere = new Set<string>()

/** Two peers on one data dir would share a peer id: refuse the second. */
export async function lockDataDir (dataDir: string): Promise<() => Promise<void>> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const path = resolve(dataDir, 'peer.lock')
  const refuse = (pid: number): DataDirError => new DataDirError(`another peer (pid ${pid}) is using ${dataDir}; give each peer its own --data-dir`)
  if (heldHere.has(path)) throw refuse(process.pid)
  try {
    await writeFile(path, String(process.pid), { flag: 'wx' })
  } catch {
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim())
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) throw refuse(pid)
    await writeFile(path, String(process.pid))
  }
  heldHere.add(path)
  return async () => {
    heldHere.delete(path)
    await rm(path, { force: true })
  }
}
