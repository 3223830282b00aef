import test from 'ava'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { submitToSwarm, type SwarmSubmitOptions } from '../../src/client/submit.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { runLocal } from '../../src/client/local.ts'
import type { JobCoordinator } from '../../src/job/coordinator.ts'
import type { SwarmPeer } from '../../src/swarm/peer.ts'
import type { Cluster } from '../../sim/cluster.ts'
import { noisePng, slowProcessor, withCluster } from '../helpers/swarm.ts'

// Two peers, one slot each (two lanes each); tiles of a fixed least time, so a lane's share is its units.
const serial = test.serial
const TILE_MS = 30

/** Every tile placed on any of `peers`' jobs, in order, by job (numbered as the jobs start: 0, 1, ...); `startedAt`: tiles placed when each job's coordinator started. */
function placements (peers: SwarmPeer[]): { order: number[], started: JobCoordinator[], startedAt: number[], onPlaced: (listener: () => void) => void } {
  const order: number[] = []
  const started: JobCoordinator[] = []
  const startedAt: number[] = []
  const listeners: Array<() => void> = []
  for (const peer of peers) {
    peer.events.addEventListener('job', evt => {
      const job = (evt as CustomEvent<JobCoordinator>).detail
      const n = started.push(job) - 1
      startedAt.push(order.length)
      job.on('placed', () => { order.push(n); for (const l of listeners) l() })
    })
  }
  return { order, started, startedAt, onPlaced: l => { listeners.push(l) } }
}

/** Resolves when `when` holds after a placement (bounded by the test's own timeout). */
async function once (track: ReturnType<typeof placements>, when: () => boolean): Promise<void> {
  if (when()) return
  await new Promise<void>(resolve => { track.onPlaced(() => { if (when()) resolve() }) })
}

async function submitNoise (peer: SwarmPeer, dir: string, size: { width: number, height: number, seed: number }, options: Partial<SwarmSubmitOptions> = {}): Promise<{ out: string, input: string, released: number }> {
  const input = await noisePng(dir, size.width, size.height, undefined, size.seed)
  const out = join(dir, `out-${size.seed}.png`)
  const done = await submitToSwarm(requestFromFlags({ ops: 'blur:1', imagePath: input, out }), { peer: peer.addrs()[0]!, tileSize: 32, ...options })
  return { out, input, released: done.leases.released }
}

const count = (order: number[], job: number, upTo = order.length): number => order.slice(0, upTo).filter(j => j === job).length

async function withTwo (options: { allowPriority?: 'all' }, run: (cluster: Cluster, dir: string, track: ReturnType<typeof placements>) => Promise<void>): Promise<void> {
  await withCluster(2, { spread: 'always', process: slowProcessor(TILE_MS), ...options }, async (cluster, dir) => {
    await run(cluster, dir, placements(cluster.peers))
  })
}

serial('two equal jobs from two clients on two coordinators, the second a little later: they end close together', async t => {
  await withTwo({}, async (cluster, dir, track) => {
    const total = 10 * 10
    const a = submitNoise(cluster.peers[0]!, dir, { width: 320, height: 320, seed: 1 })
    await once(track, () => count(track.order, 0) >= 6)
    const b = submitNoise(cluster.peers[1]!, dir, { width: 320, height: 320, seed: 2 })
    await once(track, () => count(track.order, 0) === total || count(track.order, 1) === total)
    const [doneA, doneB] = [count(track.order, 0), count(track.order, 1)]
    // Since the second started, each should have done as much as the other.
    const headStart = count(track.order, 0, track.startedAt[1])
    const lag = Math.abs(doneA - headStart - doneB)
    t.log(`when the first ended: ${doneA} and ${doneB} of ${total} tiles; since the second started, ${doneA - headStart} and ${doneB} (a lag of ${(100 * lag / total).toFixed(0)}%)`)
    // Job after job, the second would have none of its tiles; shared, it lags by a unit a lane, and the lanes' units while it is announced and joined.
    t.true(lag <= 0.15 * total, `lag ${lag} of ${total}`)
    const [first, second] = await Promise.all([a, b])
    t.log(`grants given back by lanes that moved: ${first.released} and ${second.released} of ${total} tiles each`)
    await runLocal(requestFromFlags({ ops: 'blur:1', imagePath: first.input, out: join(dir, 'local.png') }))
    t.true((await readFile(first.out)).equals(await readFile(join(dir, 'local.png'))), 'output exact')
  })
})

serial('a small job submitted during a big one is not stuck behind it: it gets lanes at once, and ends long before the big one', async t => {
  await withTwo({}, async (cluster, dir, track) => {
    const big = submitNoise(cluster.peers[0]!, dir, { width: 640, height: 320, seed: 3 })
    await once(track, () => count(track.order, 0) >= 10)
    const small = submitNoise(cluster.peers[0]!, dir, { width: 96, height: 96, seed: 4 })
    await once(track, () => count(track.order, 1) === 9)
    const from = track.startedAt[1]!
    const bigMeanwhile = count(track.order, 0) - count(track.order, 0, from)
    t.log(`from the small job's start to its end (9 tiles) the big one placed ${bigMeanwhile}; the big one had ${count(track.order, 0)} of 200 when the small one ended`)
    // Half the lanes each, a unit a lane to move over, and the lanes' units while the small job is announced and joined.
    t.true(bigMeanwhile <= 9 + 8 + 8, `the big job placed ${bigMeanwhile} while the small one ran`)
    t.true(count(track.order, 0) < 200 * 0.5, 'the small job ended long before the big one')
    await Promise.all([big, small])
  })
})

serial('high beside normal: the high job gets about 4/6 of the lanes while both run', async t => {
  await withTwo({ allowPriority: 'all' }, async (cluster, dir, track) => {
    const normal = submitNoise(cluster.peers[0]!, dir, { width: 640, height: 320, seed: 5 })
    await once(track, () => count(track.order, 0) >= 4)
    const high = submitNoise(cluster.peers[1]!, dir, { width: 640, height: 320, seed: 6 }, { priority: 'high' })
    await once(track, () => count(track.order, 1) >= 60)
    // The window: from the high job's start to its 60th tile.
    const from = track.startedAt[1]!
    const window = track.order.slice(from)
    const share = count(window, 1) / window.length
    t.log(`high's share of the tiles placed while both ran: ${share.toFixed(2)} (${count(window, 1)} of ${window.length})`)
    t.true(share >= 0.6, `high's share ${share}`)
    await Promise.all([normal, high])
  })
})
