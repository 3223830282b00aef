import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { DataDirError } from '../common/errors.ts'

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

/** Who holds a lock: a pid alone is reused (after a reboot, in a new container); with its start time and the boot it is not. */
interface Holder {
  pid: number
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat, field 22). */
  start?: string
  boot?: string
}

async function processStart (pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
}

async function bootId (): Promise<string | undefined> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => undefined))?.trim()
}

async function thisProcess (): Promise<Holder> {
  return { pid: process.pid, start: await processStart(process.pid), boot: await bootId() }
}

function parseHolder (text: string): Holder | undefined {
  try {
    const h = JSON.parse(text) as Partial<Holder>
    if (Number.isInteger(h.pid) && h.pid! > 0) return { pid: h.pid!, start: typeof h.start === 'string' ? h.start : undefined, boot: typeof h.boot === 'string' ? h.boot : undefined }
  } catch {}
  // A lock from before start times were kept: just a pid.
  const pid = Number(text.trim())
  return Number.isInteger(pid) && pid > 0 ? { pid } : undefined
}

/** Whether the process that wrote the lock is still running: not just some process with its pid. */
async function stillHeld (holder: Holder): Promise<boolean> {
  if (holder.boot !== undefined && holder.boot !== await bootId()) return false
  if (!alive(holder.pid)) return false
  if (holder.start === undefined) return true
  const start = await processStart(holder.pid)
  return start === undefined || start === holder.start
}

/** Lock files this process holds. */
const heldHere = new Set<string>()

/**
 * Two peers on one data dir would share a peer id: refuse the second. A lock
 * left by a process that is gone is taken over, even if its pid now names
 * another live process.
 */
export async function lockDataDir (dataDir: string): Promise<() => Promise<void>> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const path = resolve(dataDir, 'peer.lock')
  const refuse = (pid: number): DataDirError => new DataDirError(`another peer (pid ${pid}) is using ${dataDir}; give each peer its own --data-dir (if no peer runs there, delete ${path})`)
  if (heldHere.has(path)) throw refuse(process.pid)
  const me = JSON.stringify(await thisProcess())
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(path, me, { flag: 'wx' })
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new DataDirError(`cannot lock ${dataDir}: ${(err as Error).message}`)
    }
    const holder = parseHolder(await readFile(path, 'utf8').catch(() => ''))
    if (holder !== undefined && await stillHeld(holder)) throw refuse(holder.pid)
    // Stale: remove it and race for it again; whoever creates it first holds it.
    if (attempt > 0) throw refuse(holder?.pid ?? 0)
    await rm(path, { force: true })
  }
  heldHere.add(path)
  return async () => {
    heldHere.delete(path)
    await rm(path, { force: true })
  }
}

/** The pid of the running process that holds `dataDir`'s lock (a peer runs there); undefined where none does. */
export async function lockHolder (dataDir: string): Promise<number | undefined> {
  const holder = parseHolder(await readFile(resolve(dataDir, 'peer.lock'), 'utf8').catch(() => ''))
  return holder !== undefined && await stillHeld(holder) ? holder.pid : undefined
}
