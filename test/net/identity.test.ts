import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { lockDataDir } from '../../src/net/identity.ts'
import { tempDir } from '../helpers/swarm.ts'

const bootId = async (): Promise<string> => (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim()
const startOf = async (pid: number): Promise<string> => {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!
}

async function dirWithLock (holder: unknown): Promise<string> {
  const dir = join(await tempDir(), 'data')
  await mkdir(dir)
  await writeFile(join(dir, 'peer.lock'), typeof holder === 'string' ? holder : JSON.stringify(holder))
  return dir
}

test('a stale lock whose pid now names another live process is taken over', async t => {
  // pid 1 is alive, but it did not start when the lock says its holder did.
  const dir = await dirWithLock({ pid: 1, start: '1', boot: await bootId() })
  const unlock = await lockDataDir(dir)
  t.is(JSON.parse(await readFile(join(dir, 'peer.lock'), 'utf8')).pid, process.pid)
  await unlock()
})

test('a lock from an earlier boot is taken over, whatever its pid names now', async t => {
  const dir = await dirWithLock({ pid: process.ppid, start: await startOf(process.ppid), boot: '00000000-0000-0000-0000-000000000000' })
  await (await lockDataDir(dir))()
  t.pass()
})

test('a lock held by a running process is refused, and taken over once it is gone', async t => {
  const child = spawn(process.execPath, ['-e', 'process.stdin.resume()'], { stdio: ['pipe', 'ignore', 'ignore'] })
  await once(child, 'spawn')
  try {
    const dir = await dirWithLock({ pid: child.pid, start: await startOf(child.pid!), boot: await bootId() })
    await t.throwsAsync(lockDataDir(dir), { name: 'DataDirError', message: new RegExp(`another peer \\(pid ${child.pid}\\) is using .*delete .*peer\\.lock`) })
    child.kill('SIGKILL')
    await once(child, 'exit')
    await (await lockDataDir(dir))()
  } finally {
    child.kill('SIGKILL')
  }
  t.pass()
})

test('an old lock with only a pid: refused while that pid lives, taken over when it does not', async t => {
  await t.throwsAsync(lockDataDir(await dirWithLock(String(process.ppid))), { name: 'DataDirError' })
  await (await lockDataDir(await dirWithLock('999999999')))()
  t.pass()
})
