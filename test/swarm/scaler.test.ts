import test from 'ava'
import { existsSync } from 'node:fs'
import { readFile, watch } from 'node:fs/promises'
import { join } from 'node:path'
import { Scaler, SCALE_CHECK_MS, type ScaleOptions } from '../../src/swarm/scaler.ts'
import type { PeerView } from '../../src/protocol/messages.ts'
import { manualClock } from '../helpers/clock.ts'
import { tempDir } from '../helpers/swarm.ts'
import { PeerMetrics } from '../../src/swarm/metrics.ts'

const ME = '12D3KooWMe000000000000000000000000000000000000000000'
const LOWER = '12D3KooWA00000000000000000000000000000000000000000000'
const HIGHER = '12D3KooWZ00000000000000000000000000000000000000000000'

/** Resolves when `name` is in `dir` (watched from the call on, so it is not missed), bounded. */
async function appears (dir: string, name: string, timeoutMs = 20_000): Promise<void> {
  const stop = new AbortController()
  const timer = setTimeout(() => { stop.abort() }, timeoutMs)
  const events = watch(dir, { signal: stop.signal })[Symbol.asyncIterator]()
  // The first next() starts the watch; whatever came before it is on disk already.
  let next = events.next()
  try {
    while (!existsSync(join(dir, name))) {
      if ((await next).done === true) throw new Error(`${name} did not appear in ${dir} within ${timeoutMs} ms`)
      next = events.next()
    }
  } catch (err) {
    if (stop.signal.aborted) throw new Error(`${name} did not appear in ${dir} within ${timeoutMs} ms`)
    throw err
  } finally {
    clearTimeout(timer)
    // The watch ends with an abort, which its last pending event hears.
    next.catch(() => {})
    stop.abort()
  }
}

/** A scaler over a job whose units are done `perTick` a second, with hooks that write their variables to files. */
async function scaler (options: Partial<ScaleOptions> = {}, peers: PeerView[] = []) {
  const dir = await tempDir()
  const clock = manualClock()
  const job: { jobId: string, done: number, total: number, pending?: number } = { jobId: 'j', done: 0, total: 100 }
  const lines: string[] = []
  const scale = new Scaler({
    peerId: ME,
    clock,
    log: line => { lines.push(line) },
    slots: 1,
    // Every unit not done waits for a peer, unless the test says how many do.
    jobs: () => job.total > 0 ? [{ ...job, pending: job.pending ?? job.total - job.done }] : [],
    peers: () => peers,
    bootstrap: () => `/ip4/127.0.0.1/tcp/4001/p2p/${ME}`,
  }, {
    out: `echo "$TILESWARM_SCALE_COUNT $TILESWARM_BOOTSTRAP $TILESWARM_SCALED_BY $TILESWARM_DATA_DIR" >> ${join(dir, 'out')}`,
    in: `echo "$TILESWARM_SCALE_PEERS" >> ${join(dir, 'in')}`,
    outAfterMs: 6000,
    inAfterMs: 5000,
    max: 4,
    cooldownMs: 3000,
    hookTimeoutMs: 10_000,
    dropEnv: ['TILESWARM_DATA_DIR'],
    ...options,
  })
  await scale.start()
  /** `seconds` of the job going at `rate` units a second; each second the scaler looks (and a hook it runs is waited for, unless `wait` is false). */
  const run = async (seconds: number, rate: number, wait = true): Promise<void> => {
    for (let s = 0; s < seconds; s++) {
      job.done = Math.min(job.total, job.done + rate)
      clock.advance(SCALE_CHECK_MS)
      if (wait) await scale.settled()
    }
  }
  return { scale, clock, job, lines, dir, run, peers }
}

test.serial('a backlog that would take longer than the bound to drain, for a third of it: the hook is asked for the peers that bring it under, with where to join', async t => {
  process.env.TILESWARM_DATA_DIR = '/somewhere/of/mine'
  try {
    const { scale, run, dir, lines } = await scaler()
    // 5 units a second, 100 to do: 20 s to drain, over the 6 s bound.
    await run(2, 5)
    t.is(scale.view().decisions.length, 0, 'not before the rate is known and the drain time has stayed over the bound')
    await run(3, 5)
    const [decision] = scale.view().decisions
    t.like(decision, { direction: 'out', outcome: 'done' })
    // 75 left at 5/s: 15 s; 1 slot would need 2.5x: 2 more peers of one slot.
    t.is(decision!.count, 2)
    t.regex(decision!.reason, /^backlog of 75 units \(75 waiting\), ~15 s to drain at 5\/s on 1 slot \(bound 6 s\)$/)
    t.true(lines.some(l => /the hook said nothing of 2 of the 2 peers it was asked for: they count against --scale-max/.test(l)), 'a hook that names no peer is told to')
    t.is((await readFile(join(dir, 'out'), 'utf8')).trim(), `2 /ip4/127.0.0.1/tcp/4001/p2p/${ME} ${ME}`, 'this peer\'s own settings are not passed on')
    t.true(lines.some(l => /^scale-out: backlog of .*: asking for 2 more peers \(echo/.test(l)), lines.join('\n'))
    t.true(lines.some(l => /^scale-out: hook done in /.test(l)))
    // After the cool-down it asks again for what the bound still wants, the two on their way counted as up.
    await run(10, 5)
    t.is(scale.view().decisions.filter(d => d.direction === 'out').length, 2, 'asked again after the cool-down, for what the bound still wants')
    scale.stop().catch(() => {})
  } finally {
    delete process.env.TILESWARM_DATA_DIR
  }
})

test.serial('only the peer with the lowest id among those with a scale-out hook acts', async t => {
  const lower = await scaler({}, [{ peerId: LOWER, addrs: [], connected: true, scaler: true, lastSeenS: 0 }])
  await lower.run(8, 5)
  t.false(lower.scale.acting)
  t.is(lower.scale.view().decisions.length, 0)
  await lower.scale.stop()
  const higher = await scaler({}, [{ peerId: HIGHER, addrs: [], connected: true, scaler: true, lastSeenS: 0 }, { peerId: LOWER, addrs: [], connected: true, lastSeenS: 0 }])
  t.true(higher.scale.acting, 'a lower id without a hook does not count')
  await higher.run(8, 5)
  t.is(higher.scale.view().decisions.length, 1)
  await higher.scale.stop()
})

test.serial('--scale-max bounds the peers up and on their way; a backlog nothing moves asks for one', async t => {
  const peers: PeerView[] = [{ peerId: HIGHER, addrs: [], connected: true, scaledBy: ME, lastSeenS: 0 }]
  const { scale, run, lines } = await scaler({ max: 1 }, peers)
  await run(8, 0)
  t.is(scale.view().decisions.length, 0)
  t.true(lines.some(l => /^scale-out: backlog of 100 units \(100 waiting\), not moving on 1 slot \(bound 6 s\), but 1 peers started here are up or on their way, the most --scale-max allows \(1\)$/.test(l)), lines.join('\n'))
  peers.length = 0
  await run(8, 0)
  t.like(scale.view().decisions[0], { direction: 'out', count: 1 })
  await scale.stop()
})

test.serial('when the swarm has had no backlog for --scale-in-after, the scale-in hook gets the ids of the peers this one started; others are left', async t => {
  const peers: PeerView[] = [
    { peerId: HIGHER, addrs: [], connected: true, scaledBy: ME, lastSeenS: 0 },
    { peerId: LOWER, addrs: [], connected: true, scaledBy: HIGHER, lastSeenS: 0 },
  ]
  const { scale, run, job, dir } = await scaler({}, peers)
  job.total = 0
  await run(4, 0)
  t.is(scale.view().decisions.length, 0)
  await run(2, 0)
  t.like(scale.view().decisions[0], { direction: 'in', count: 1, peers: [HIGHER], outcome: 'done' })
  t.is((await readFile(join(dir, 'in'), 'utf8')).trim(), HIGHER)
  await scale.stop()
})

test.serial('a hook that fails or hangs is reported and bounded, and the next decision comes after the cool-down', async t => {
  const failing = await scaler({ out: 'echo "no quota left in this region" >&2; exit 3' })
  await failing.run(5, 5)
  t.like(failing.scale.view().decisions[0], { outcome: 'failed', message: 'exit status 3: no quota left in this region' })
  t.true(failing.lines.some(l => /^scale-out: hook failed after .* s: exit status 3: no quota left in this region$/.test(l)), failing.lines.join('\n'))
  await failing.run(6, 5)
  t.is(failing.scale.view().decisions.length, 2, 'tried again after the cool-down')
  t.is(failing.scale.totals.get('out failed'), 2)
  const metrics = new PeerMetrics()
  metrics.watch({ totals: () => ({ units: 0, granted: 0, expired: 0, released: 0, bytesIn: 0, bytesOut: 0, checked: 0, disagreements: 0, extra: 0, excluded: 0 }), peersConnected: () => 0, connections: () => 0, activeJobs: () => 0, heldLeases: () => 0, cachedResultBytes: () => 0, scaling: () => failing.scale })
  const scraped = await metrics.registry.metrics()
  t.regex(scraped, /^tileswarm_scale_decisions_total\{direction="out",outcome="failed"\} 2$/m)
  t.regex(scraped, /^tileswarm_backlog_units \d+$/m)
  await failing.scale.stop()

  const dir = await tempDir()
  const started = join(dir, 'started')
  const hanging = await scaler({ out: `touch ${started}; sleep 60`, hookTimeoutMs: 2000 })
  const seen = appears(dir, 'started')
  await hanging.run(5, 5, false)
  t.like(hanging.scale.view().decisions[0], { outcome: 'running' })
  // Under way, then past its time: killed, with the sleep it started.
  await seen
  for (let i = 0; i < 2; i++) hanging.clock.advance(SCALE_CHECK_MS)
  await hanging.scale.settled()
  t.like(hanging.scale.view().decisions[0], { outcome: 'timed out', message: 'killed after 2 s (--scale-hook-timeout)' })
  t.is(hanging.scale.view().decisions.length, 1, 'no other hook ran meanwhile')
  await hanging.scale.stop()
})

test.serial('a peer that stops scales in the peers it started', async t => {
  const peers: PeerView[] = [{ peerId: HIGHER, addrs: [], connected: true, scaledBy: ME, lastSeenS: 0 }]
  const { scale, dir } = await scaler({}, peers)
  await scale.stop()
  t.like(scale.view().decisions[0], { direction: 'in', peers: [HIGHER], outcome: 'done' })
  t.regex(scale.view().decisions[0]!.reason, /^this peer is stopping/)
  t.is((await readFile(join(dir, 'in'), 'utf8')).trim(), HIGHER)
})

const STARTED = ['12D3KooWQq1111111111111111111111111111111111111111', '12D3KooWQq2222222222222222222222222222222222222222']

test.serial('peers a hook started that never join count against --scale-max (no runaway), are said missing, and are stopped by scale-in all the same', async t => {
  const { scale, run, job, dir, lines, clock } = await scaler({ max: 2, out: `echo "started ${STARTED[0]}"; echo "started ${STARTED[1]}"` })
  await run(5, 5)
  t.like(scale.view().decisions[0], { direction: 'out', count: 2, outcome: 'done' })
  t.deepEqual(scale.ours().sort(), [...STARTED].sort())
  // They never come: the backlog stays over the bound, and no more are asked for.
  await run(10, 1)
  t.is(scale.view().decisions.length, 1)
  t.true(lines.some(l => /most --scale-max allows \(2\)$/.test(l)), lines.join('\n'))
  clock.advance(120_000)
  t.is(lines.filter(l => /has not joined in 120 s/.test(l)).length, 2)
  job.total = 0
  await run(6, 0)
  t.like(scale.view().decisions[0], { direction: 'in', count: 2, outcome: 'done' })
  t.deepEqual((await readFile(join(dir, 'in'), 'utf8')).trim().split(' ').sort(), [...STARTED].sort())
  t.deepEqual(scale.ours(), [], 'stopped: no longer counted')
  await scale.stop()
})

test.serial('no scale-out for idle time before a job (the rate is measured from when work came), nor for work that no new peer could take', async t => {
  const idleFirst = await scaler()
  idleFirst.job.total = 0
  await idleFirst.run(20, 0)
  // 100 units at 20 a second: 5 s, under the 6 s bound.
  idleFirst.job.total = 100
  await idleFirst.run(5, 20)
  t.is(idleFirst.scale.view().decisions.length, 0, idleFirst.lines.join('\n'))
  await idleFirst.scale.stop()
  const leased = await scaler()
  // Every unit under lease (announced jobs stop announcing then): nothing waits for a peer.
  leased.job.pending = 0
  await leased.run(10, 0)
  t.is(leased.scale.view().decisions.length, 0)
  await leased.scale.stop()
})

test.serial('a peer that stops while its scale-out hook hangs kills the hook after a while, then stops the peers it started', async t => {
  const dir = await tempDir()
  const { scale, run, clock } = await scaler({ out: `echo "started ${STARTED[0]}"; touch ${join(dir, 'started')}; sleep 60`, hookTimeoutMs: 600_000 })
  const seen = appears(dir, 'started')
  await run(5, 5, false)
  await seen
  const stopped = scale.stop()
  for (let i = 0; i < 30; i++) clock.advance(1000)
  await stopped
  const [scaledIn, out] = scale.view().decisions
  t.like(out, { direction: 'out', outcome: 'timed out' })
  t.regex(out!.message ?? '', /\(this peer is stopping\); it said: started /)
  t.like(scaledIn, { direction: 'in', peers: [STARTED[0]], outcome: 'done' })
})
