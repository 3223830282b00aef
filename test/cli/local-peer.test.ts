import test from 'ava'
import { spawn } from 'node:child_process'
import { access, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { lockDataDir } from '../../src/net/identity.ts'
import { localPeer, readPeerRecord, recordPeer } from '../../src/cli/local-peer.ts'
import { runCli } from '../helpers/cli.ts'
import { startPeerProcess } from '../../sim/processes.ts'
import { tempDir } from '../helpers/swarm.ts'

const ID = '12D3KooWLRPJAA5o6Z6gmCEjiS6Jt7ZxhHjoTrcoF7uGpHXX9bsk'
const NONE = /^no peer runs on this machine \(data dir .+\); start one with `tileswarm peer` or give --peer$/

/** The pid of a process that has ended. */
async function endedPid (): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''])
  await new Promise(resolve => child.on('exit', resolve))
  return child.pid!
}

test('no record: a one-line error naming the data dir and what to do', async t => {
  const dir = await tempDir()
  await t.throwsAsync(localPeer([dir]), { name: 'NetworkError', message: NONE })
  await t.throwsAsync(localPeer([dir], 'give --peer (a swarm) or --local (process here)'), { message: /or give --peer \(a swarm\) or --local \(process here\)$/ })
})

test('a stale record is ignored: its process is gone, or it does not hold the data dir', async t => {
  const dir = await tempDir()
  await writeFile(join(dir, 'listening.json'), JSON.stringify({ pid: await endedPid(), peerId: ID, addrs: [`/ip4/127.0.0.1/tcp/4001/p2p/${ID}`] }))
  t.is(await readPeerRecord(dir), undefined)
  await t.throwsAsync(localPeer([dir]), { message: NONE })
  // Alive, but no lock of its own: a pid reused by some other process.
  await writeFile(join(dir, 'listening.json'), JSON.stringify({ pid: process.pid, peerId: ID, addrs: [`/ip4/127.0.0.1/tcp/4001/p2p/${ID}`] }))
  t.is(await readPeerRecord(dir), undefined)
  await writeFile(join(dir, 'listening.json'), 'not json')
  t.is(await readPeerRecord(dir), undefined)
})

test('a record of the process that holds the data dir is found, in the first dir that has one', async t => {
  const [empty, dir] = [await tempDir(), await tempDir()]
  const unlock = await lockDataDir(dir)
  try {
    const addrs = [`/ip4/127.0.0.1/tcp/4001/p2p/${ID}`]
    await recordPeer(dir, { pid: process.pid, peerId: ID, addrs })
    t.deepEqual(await localPeer([empty, dir]), { pid: process.pid, peerId: ID, addrs })
  } finally {
    await unlock()
  }
  // Unlocked (the peer stopped): gone, even with the file still there.
  await t.throwsAsync(localPeer([empty, dir]), { message: NONE })
})

test.serial('status, jobs and submit with no --peer ask the peer running on this machine, in its private swarm; host:port works; a stopped peer leaves no record', async t => {
  const dir = await tempDir()
  const data = join(dir, 'data')
  const env = { ...process.env, TILESWARM_DATA_DIR: data }
  const key = join(dir, 'swarm.key')
  t.is((await runCli(['keygen', '--out', key])).code, 0)
  const peer = await startPeerProcess('local', ['--listen', '/ip4/127.0.0.1/tcp/0', '--slots', '1', '--swarm-key', key], { env })
  try {
    const record = JSON.parse(await readFile(join(data, 'listening.json'), 'utf8')) as { pid: number, addrs: string[] }
    t.deepEqual(record, { pid: peer.child.pid!, peerId: peer.peerId, addrs: [peer.addr], swarmKey: key })
    const status = await runCli(['status'], { env })
    t.is(status.code, 0, status.stderr)
    t.regex(status.stdout, new RegExp(`^peer ${peer.peerId} `))
    const port = /\/tcp\/(\d+)\//.exec(peer.addr)![1]
    const typed = await runCli(['jobs', '--peer', `127.0.0.1:${port}/${peer.peerId}`, '--swarm-key', key], { env: { ...process.env, TILESWARM_DATA_DIR: join(dir, 'none') } })
    t.is(typed.code, 0, typed.stderr)
    const out = join(dir, 'out.png')
    const submitted = await runCli(['submit', '-i', join(import.meta.dirname, '../fixtures/low-contrast.jpg'), '--ops', 'invert', '-o', out], { env })
    t.is(submitted.code, 0, submitted.stderr)
    await access(out)
    // One peer checks nothing: no 'verified' line.
    t.notRegex(submitted.stdout, /verified/)
  } finally {
    t.is(await peer.stop('SIGTERM'), 0)
  }
  await t.throwsAsync(access(join(data, 'listening.json')))
  const none = await runCli(['status'], { env })
  t.is(none.code, 1)
  t.is(none.stderr, `tileswarm: no peer runs on this machine (data dir ${data}); start one with \`tileswarm peer\` or give --peer\n`)
  const submitNone = await runCli(['submit', '-i', 'x.png', '--ops', 'invert'], { env })
  t.regex(submitNone.stderr, /^tileswarm: no peer runs on this machine .*give --peer \(a swarm\) or --local \(process here\)\n$/)
})
