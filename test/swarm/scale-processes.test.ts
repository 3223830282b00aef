import test from 'ava'
import { readdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { REPO, runPeerJs as runCli, startPeerProcess } from '../../sim/processes.ts'
import { noisePng, tempDir } from '../helpers/swarm.ts'

const FAULTY_PEER = resolve(REPO, 'sim/faulty-peer.ts')
const LOCAL_PEERS = resolve(REPO, 'deploy/local-peers.sh')

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

test.serial('one peer, a job that would take over the bound to drain: the local-process hook starts peers that join and take tiles, the output is exact; idle, they are stopped', async t => {
  const dir = await tempDir()
  const peersDir = join(dir, 'local-peers')
  // Every peer's tiles take 100 ms (a cost model, so several fit on two cores); the started peers run the same program.
  const env = { ...process.env, TILESWARM_TILE_MS: '100', TILESWARM_LOCAL_PEERS_DIR: peersDir, TILESWARM_LOCAL_PEER: `${process.execPath} ${FAULTY_PEER}` }
  const peer = await startPeerProcess('p1', [
    '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(dir, 'p1'), '--slots', '1',
    '--scale-out', `bash ${LOCAL_PEERS} up`, '--scale-in', `bash ${LOCAL_PEERS} down`,
    '--scale-out-after', '2', '--scale-in-after', '2', '--scale-max', '2', '--scale-cooldown', '1',
  ], { env, script: FAULTY_PEER })
  const pids: number[] = []
  try {
    // 256 tiles at 100 ms, two at a time: about 13 s on this peer alone.
    const input = await noisePng(dir, 512, 512, { channels: 3, depth: 8 }, 31)
    const out = join(dir, 'out.png')
    const submitting = runCli(['submit', '--peer', peer.addr, '--ops', 'invert', '-i', input, '-o', out, '--tile-size', '32', '--verify', 'off'], { timeoutMs: 90_000 })
    await peer.waitFor(/scale-out: backlog of \d+ units \(\d+ waiting\), (~\d+ s to drain at [\d.]+\/s|not moving) on 1 slot \(bound 2 s\): asking for [12] more peers?/, 30_000)
    await peer.waitFor(/scale-out: hook done in .*: started /, 30_000)
    // Two at most (--scale-max): asked for at once, or one and then one more.
    const ids = new Set<string>()
    const collect = async (): Promise<void> => {
      for (const id of (await readdir(peersDir)).filter(f => f.startsWith('12D3KooW') && !ids.has(f))) {
        ids.add(id)
        pids.push(Number(await readFile(join(peersDir, id, 'pid'), 'utf8')))
      }
    }
    await collect()
    const submitted = await submitting
    await collect()
    t.true(pids.length >= 1 && pids.length <= 2, [...ids].join(' '))
    t.is(submitted.code, 0, submitted.stderr)
    const local = await runCli(['submit', '--local', '--ops', 'invert', '-i', input, '-o', join(dir, 'local.png')])
    t.is(local.code, 0, local.stderr)
    t.true((await readFile(out)).equals(await readFile(join(dir, 'local.png'))), 'output exact')
    // tiles by peer: p1's and a started peer's at least.
    const byPeer = /tiles by peer: (.*)$/m.exec(submitted.stdout)?.[1]?.split(', ') ?? []
    t.true(byPeer.length >= 2, submitted.stdout)
    const status = await runCli(['status', '--peer', peer.addr, '--json'], { timeoutMs: 20_000 })
    t.is(status.code, 0, status.stderr)
    const scaling = (JSON.parse(status.stdout) as { scaling: { acting: boolean, scaledPeers: string[], decisions: Array<{ direction: string, count: number, outcome: string }> } }).scaling
    t.true(scaling.acting)
    t.like(scaling.decisions.at(-1), { direction: 'out', outcome: 'done' })
    const text = await runCli(['status', '--peer', peer.addr], { timeoutMs: 20_000 })
    t.regex(text.stdout, /^scaling: backlog \d+ units?, .*; this peer decides for the swarm; \d started here and up$/m)
    t.regex(text.stdout, /ago +out +[12] +done: started /)
    // Idle for --scale-in-after: the hook stops them (together, or one by one as their hellos say they are this peer's).
    for (const id of ids) await peer.waitFor(new RegExp(`scale-in: hook done in .*stopped ${id}`), 30_000)
    t.true(peer.lines.some(l => /scale-in: no backlog for 2 s; [12] peers? started here idle: stopping /.test(l)))
    t.deepEqual(pids.map(alive), [false, false], 'the started peers are gone')
    t.deepEqual(await readdir(peersDir), [])
  } finally {
    await peer.stop()
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL')
  }
})
