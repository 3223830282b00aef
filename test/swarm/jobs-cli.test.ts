import test from 'ava'
import { access } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster } from '../../sim/cluster.ts'
import type { SwarmPeer } from '../../src/swarm/peer.ts'
import { runCli } from '../helpers/cli.ts'
import { heldAfter, noisePng, tempDir } from '../helpers/swarm.ts'

interface Listed { running: Array<{ jobId: string, client?: string, ops?: string[] }>, finished: Array<{ jobId: string, outcome: string }> }

test.serial('the CLI: jobs lists a job submitted from another terminal, cancel is refused to another identity in one line and done by its submitter\'s --data-dir, submit and watch end with it in one line, non-zero; unknown ids said in one line', async t => {
  // The peers hold every tile after the first two: the job runs until it is cancelled.
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const cluster = await Cluster.start(2, { process: heldAfter(2, released), spread: 'always' })
  try {
    const [coordinator, other] = cluster.peers as [SwarmPeer, SwarmPeer]
    const dir = await tempDir()
    const input = await noisePng(dir, 256, 192)
    const out = join(dir, 'out.png')
    const submitter = join(dir, 'submitter')
    const peer = coordinator.addrs()[0]!
    const ask = other.addrs()[0]!
    const submitted = runCli(['submit', '--ops', 'blur:1', '-i', input, '-o', out, '--tile-size', '32', '--peer', peer, '--data-dir', submitter], { timeoutMs: 60_000 })

    let listed: Listed | undefined
    for (let i = 0; i < 40 && (listed?.running.length ?? 0) === 0; i++) {
      const r = await runCli(['jobs', '--peer', ask, '--json'], { timeoutMs: 20_000 })
      t.is(r.code, 0, r.stderr)
      listed = JSON.parse(r.stdout) as Listed
    }
    const job = listed!.running[0]!
    t.deepEqual(job.ops, ['blur'])
    const text = await runCli(['jobs', '--peer', ask], { timeoutMs: 20_000 })
    t.regex(text.stdout, new RegExp(`^running: 1 `))
    t.regex(text.stdout, new RegExp(`${job.jobId}\\s+tiles\\s+${job.client!.slice(-8)}\\s+normal\\s+${coordinator.peerId.slice(-8)}`))

    const stranger = await runCli(['cancel', job.jobId, '--peer', ask, '--data-dir', join(dir, 'stranger')], { timeoutMs: 20_000 })
    t.is(stranger.code, 1)
    t.regex(stranger.stderr, /^tileswarm: job \S+ may be cancelled only by its submitter \(\S+\) or this peer's operator \(--http-token\); you are \S+\n$/)

    // Asked of the coordinator: whether it starts before the cancel or after, it sees the job's end (kept an hour there).
    const watched = runCli(['watch', job.jobId, '--peer', peer, '--json'], { timeoutMs: 60_000 })
    const cancelled = await runCli(['cancel', job.jobId, '--peer', ask, '--data-dir', submitter], { timeoutMs: 20_000 })
    t.is(cancelled.code, 0, cancelled.stderr)
    t.is(cancelled.stdout, `cancelled job ${job.jobId} on its coordinator ${coordinator.peerId.slice(-8)}\n`)
    const sub = await submitted
    t.is(sub.code, 1)
    t.regex(sub.stderr, new RegExp(`tileswarm: job ${job.jobId} was cancelled by its submitter\\n$`))
    await t.throwsAsync(access(out), undefined, 'no output written')
    const watch = await watched
    t.is(watch.code, 1)
    const events = watch.stdout.trim().split('\n').map(l => JSON.parse(l) as { event: string, outcome?: string, name?: string })
    t.like(events.find(e => e.event === 'ended'), { outcome: 'cancelled' })
    t.like(events.at(-1), { event: 'error', name: 'JobCancelledError' })

    const after = JSON.parse((await runCli(['jobs', '--peer', peer, '--json'], { timeoutMs: 20_000 })).stdout) as Listed
    t.like(after.finished.find(f => f.jobId === job.jobId), { outcome: 'cancelled' })
    for (const command of ['watch', 'cancel']) {
      const unknown = await runCli([command, 'no-such-job', '--peer', ask], { timeoutMs: 20_000 })
      t.is(unknown.code, 1)
      t.regex(unknown.stderr, /^tileswarm: no job no-such-job is known to the peer at \S+ \(tileswarm jobs lists those it knows\)\n$/)
    }
  } finally {
    release()
    await cluster.stop()
  }
})
