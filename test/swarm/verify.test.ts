import test from 'ava'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { processTile } from '../../src/imaging/index.ts'
import { runLocal } from '../../src/client/local.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm, type SubmitEvent } from '../../src/client/submit.ts'
import type { VerifyLevel } from '../../src/protocol/verify-level.ts'
import { noisePng, trackPlacements, withWatchedCluster } from '../helpers/swarm.ts'

/**
 * Three peers; the third lies on every tile it sends (one bit flipped, after
 * which it computes the checksum: only a second computation can tell). The
 * others wait until the liar has placed a tile, so it surely has.
 */
interface LiarRun {
  swarm: Buffer
  local: Buffer
  events: SubmitEvent[]
  liar: string
  /** Tiles the liar sent back wrong. */
  lied: number
  done: Awaited<ReturnType<typeof submitToSwarm>>
  metrics: string
}

async function jobWithLiar (verify: VerifyLevel, ops: string): Promise<LiarRun> {
  let result: LiarRun | undefined
  await withWatchedCluster(3, 2, { process: async (pixels, tile, work) => await processTile(pixels, tile, work) }, async (cluster, dir, go) => {
    const [coordinator, , liar] = cluster.peers as [typeof cluster.peers[0], unknown, typeof cluster.peers[0]]
    cluster.lie(liar, 1)
    trackPlacements(coordinator, (_tile, by) => { if (by === liar.peerId) go() })
    const input = await noisePng(dir, 320, 256, { channels: 3, depth: 8 }, 17)
    const out = join(dir, 'out-swarm.png')
    const events: SubmitEvent[] = []
    const done = await submitToSwarm(requestFromFlags({ ops, imagePath: input, out }), { peer: coordinator.addrs()[0]!, tileSize: 32, verify, onEvent: e => events.push(e) })
    await runLocal(requestFromFlags({ ops, imagePath: input, out: join(dir, 'out-local.png') }))
    result = { swarm: await readFile(out), local: await readFile(join(dir, 'out-local.png')), events, liar: liar.peerId, lied: cluster.lies.get(liar)!.lied, done, metrics: await coordinator.metrics.registry.metrics() }
  })
  return result!
}

test('a lying worker among three peers: spot checks catch it, exclude it, redo its tiles; the output is exact and the client is told', async t => {
  const { swarm, local, events, liar, lied, done, metrics } = await jobWithLiar(0.02, 'median:size=3')
  t.true(lied > 0, 'the liar lied')
  t.true(swarm.equals(local), 'output exact')
  t.deepEqual(Object.keys(done.verify?.excluded ?? {}), [liar], 'the liar is named in the result')
  t.true((done.verify?.checked ?? 0) > 0)
  t.true(events.some(e => e.event === 'excluded' && e.peer === liar), 'and as it happened')
  t.regex(metrics, /tileswarm_peers_excluded_total 1/)
  t.regex(metrics, /tileswarm_verify_disagreements_total [1-9]/)
})

test('the same liar with checks off: its wrong tiles reach the output (what the checks are for)', async t => {
  const { swarm, local, lied, done } = await jobWithLiar('off', 'median:size=3')
  t.true(lied > 0, 'the liar lied')
  t.false(swarm.equals(local), 'the output is wrong')
  t.is(done.verify, undefined)
})

test('a liar in a job of phases (Canny), every tile checked: the output is exact', async t => {
  const { swarm, local, lied, done, liar } = await jobWithLiar('all', 'canny')
  t.true(lied > 0, 'the liar lied')
  t.true(swarm.equals(local), 'output exact')
  t.deepEqual(Object.keys(done.verify?.excluded ?? {}), [liar])
})
