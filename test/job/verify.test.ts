import test from 'ava'
import { JobCoordinator } from '../../src/job/coordinator.ts'
import type { ClaimOutcome } from '../../src/job/tiled-job.ts'
import { tileChecksum } from '../../src/protocol/checksum.ts'
import { MAX_VOTES, TrustRecords } from '../../src/job/verify.ts'
import { parseVerifyLevel, type VerifyLevel } from '../../src/protocol/verify-level.ts'
import { inputOf, pixelsReady } from '../helpers/job-input.ts'
import { manualClock } from '../helpers/clock.ts'
import { extract, parseOps, processTile, resolvePipeline, runPipeline } from '../../src/imaging/index.ts'
import { noiseImage } from '../../sim/model.ts'
import { memoryChannelPair } from '../../src/protocol/framing.ts'
import { serveTileSession } from '../../src/job/tile-session.ts'
import { CoordinatorLink } from '../../src/worker/coordinator-link.ts'

const SELF = 'self-peer'


/** A one-phase job of invert on 4 tiles, checked at `level`; `draws` are what picks the results checked (1: never, 0: always). */
async function job (level: VerifyLevel, records = new TrustRecords(), draws: () => number = () => 0) {
  const steps = resolvePipeline(parseOps('invert'))
  const source = noiseImage(64, 64, { channels: 3, depth: 8 }, 7)
  const reference = await runPipeline({ ...source, data: Buffer.from(source.data) }, steps)
  const clock = manualClock()
  const coordinator = new JobCoordinator({ jobId: 'j', jobKey: 'k'.repeat(64), self: SELF, ...inputOf(source, steps), steps, tileSize: 32, leaseMs: 1000, clock, parkMs: 10, verify: { level, records, random: draws } })
  await pixelsReady()
  const excluded: string[] = []
  coordinator.on('excluded', peer => { excluded.push(peer) })
  /** The right pixels of a tile, or with one bit flipped. */
  const pixels = (tile: number, lie = false): Buffer => {
    const data = Buffer.from(extract(reference, coordinator.tiles[tile]!.core).data)
    if (lie) data[5]! ^= 4
    return data
  }
  /** A claim answered at once (parked claims run out on the clock). */
  const claim = async (peer: string): Promise<ClaimOutcome> => {
    const outcome = coordinator.claim(peer)
    clock.advance(11)
    return await outcome
  }
  /** `peer` claims and sends back its tile, right or wrong: the tile it got, or undefined. */
  const work = async (peer: string, lie = false): Promise<{ tile: number, status: string } | undefined> => {
    const outcome = await claim(peer)
    if (outcome.kind !== 'grant') return undefined
    const { lease, tile } = outcome.grant
    const data = pixels(tile.index, lie)
    return { tile: tile.index, status: coordinator.result(peer, tile.index, lease.leaseId, tileChecksum(data), data).status }
  }
  return { coordinator, reference, clock, excluded, work, claim, records }
}

test('--verify takes a share, all or off; anything else is refused with the reason', t => {
  t.is(parseVerifyLevel('0.05'), 0.05)
  t.is(parseVerifyLevel('all'), 'all')
  t.is(parseVerifyLevel('off'), 'off')
  for (const bad of ['', '2', '-0.1', 'most', 'NaN']) t.throws(() => parseVerifyLevel(bad), { message: /--verify takes a share of tiles from 0 to 1, 'all' or 'off'/ })
})

test('the share adapts: every result of a new peer, then half, halving as checks pass, never under the floor', t => {
  const records = new TrustRecords()
  t.is(records.share('new', 0.02), 1)
  records.of('busy').pending = 1
  t.is(records.share('busy', 0.02), 0.5, 'a check under way counts as passed: a burst of results is not all checked')
  records.of('known').agreed = 1
  t.is(records.share('known', 0.02), 0.5)
  records.of('known').agreed = 5
  t.is(records.share('known', 0.02), 0.25)
  records.of('known').agreed = 100
  t.is(records.share('known', 0.02), 0.02, 'a long clean record comes down to the floor')
  t.is(records.share('known', 'all'), 1)
  t.is(records.share('new', 'off'), 0)
})

test('a check goes to another peer, and two results that agree settle the tile', async t => {
  const { coordinator, work, records } = await job('all')
  const first = await work('a')
  t.like(first, { tile: 0, status: 'accepted' })
  // The check of tile 0 is not a's to do: a gets a fresh tile.
  t.like(await work('a'), { tile: 1, status: 'accepted' })
  t.like(await work('b'), { tile: 0, status: 'accepted' }, 'b checks tile 0 before taking fresh tiles')
  t.is(coordinator.verifyFigures.checked, 1)
  t.is(coordinator.verifyFigures.extra, 1)
  t.is(records.of('a').agreed, 1)
  t.is(records.of('b').agreed, 1)
  t.is(records.of('a').pending, 1, 'its tile 1 is under check')
  t.is(coordinator.progress.done, 2, 'progress counts tiles, not their checks')
})

test('a disagreement is settled by a third computation: the liar is excluded, its tiles redone, the output exact', async t => {
  const { coordinator, reference, work, claim, excluded, records } = await job('all')
  t.like(await work('liar', true), { tile: 0 })
  t.like(await work('liar'), { tile: 1 })
  t.like(await work('b'), { tile: 0 }, 'b checks tile 0 and disagrees')
  t.is(coordinator.verifyFigures.disagreements, 1)
  t.like(await work('b'), { tile: 1 }, 'then checks tile 1 (the liar was right there)')
  t.like(await work('c'), { tile: 0 }, 'c breaks the tie on tile 0')
  t.deepEqual(excluded, ['liar'])
  t.deepEqual(coordinator.verifyFigures.excluded, { liar: 1 })
  t.is(records.of('liar').wrong, 1)
  t.is((await claim('liar')).kind, 'excluded', 'the liar gets no more of the job')
  while (await work('b') !== undefined || await work('c') !== undefined) {}
  const output = await coordinator.finished
  t.true(output.data.equals(reference.data))
  t.is(coordinator.verifyFigures.replaced, 1, 'the liar\'s tile 0 was placed first, then replaced')
  t.deepEqual(['liar', 'b', 'c'].map(p => records.of(p).pending), [0, 0, 0], 'no check is left counted as under way')
})

test('a liar whose tiles were taken on its word alone: once caught, every one of them is computed again', async t => {
  // A peer with a long clean record, checked at the floor; the draws say tile 0 is not checked, tile 1 is.
  const records = new TrustRecords()
  records.of('liar').agreed = 100
  const draws = [0.9, 0]
  const { coordinator, reference, work, excluded } = await job(0.01, records, () => draws.shift() ?? 1)
  t.like(await work('liar', true), { tile: 0 }, 'not checked: taken on its word')
  t.like(await work('liar', true), { tile: 1 }, 'checked')
  t.like(await work('b'), { tile: 1 })
  t.like(await work('c'), { tile: 1 })
  t.deepEqual(excluded, ['liar'])
  while (await work('b') !== undefined) {}
  t.true((await coordinator.finished).data.equals(reference.data), 'tile 0 was redone')
})

test('this peer\'s own worker is never checked, and its word settles a check', async t => {
  const { coordinator, reference, work, excluded } = await job('all')
  t.like(await work(SELF), { tile: 0 })
  t.like(await work('liar', true), { tile: 1 })
  t.like(await work(SELF), { tile: 1 }, 'this peer checks tile 1 and is believed')
  t.deepEqual(excluded, ['liar'])
  while (await work(SELF) !== undefined) {}
  t.true((await coordinator.finished).data.equals(reference.data))
  t.is(coordinator.verifyFigures.extra, 1, 'only the liar\'s tile was computed twice')
})

test(`${MAX_VOTES} computations of a tile of which no two agree fail the job, with the reason`, async t => {
  const { coordinator } = await job('all')
  const distinct = (n: number): Buffer => { const d = Buffer.from(extract(noiseImage(64, 64, { channels: 3, depth: 8 }, 7), coordinator.tiles[0]!.core).data); d[0] = n; return d }
  for (const [i, peer] of ['a', 'b', 'c', 'd'].entries()) {
    const outcome = await coordinator.claim(peer)
    if (outcome.kind !== 'grant') throw new Error(outcome.kind)
    if (outcome.grant.tile.index !== 0) { t.fail(`${peer} got tile ${outcome.grant.tile.index}`); return }
    const data = distinct(i)
    coordinator.result(peer, 0, outcome.grant.lease.leaseId, tileChecksum(data), data)
  }
  t.is(coordinator.verifyFigures.disagreements, MAX_VOTES - 1)
  await t.throwsAsync(coordinator.finished, { message: `tile 0 of phase 1: ${MAX_VOTES} peers computed it and no two agree` })
})

test('a peer caught in one job gets no work in the next this peer coordinates; with checks off, nothing is checked', async t => {
  const records = new TrustRecords()
  records.of('liar').wrong = 1
  const next = await job('off', records)
  t.is(next.coordinator.join('liar', new Map([[0, Uint8Array.of(0b1111)]])), undefined, 'nothing it holds is reserved for it to hand over')
  t.is((await next.claim('liar')).kind, 'excluded')
  t.deepEqual(next.excluded, ['liar'])
  t.deepEqual(next.coordinator.verifyFigures.excluded, { liar: 0 })
  while (await next.work('b') !== undefined) {}
  await next.coordinator.finished
  t.is(next.coordinator.verifyFigures.extra, 0)
})

test('a liar caught after one of its summaries was reduced on its word: the phases start over without it, the output exact', async t => {
  const steps = resolvePipeline(parseOps('equalize'))
  const source = noiseImage(64, 64, { channels: 3, depth: 8 }, 11)
  const reference = await runPipeline({ ...source, data: Buffer.from(source.data) }, steps)
  const clock = manualClock()
  const records = new TrustRecords()
  records.of('liar').agreed = 100
  // The liar's first summary is not checked (taken on its word); its second is.
  const draws = [0.9, 0]
  const coordinator = new JobCoordinator({ jobId: 'j', jobKey: 'k'.repeat(64), self: SELF, ...inputOf(source, steps), steps, tileSize: 32, leaseMs: 1000, clock, parkMs: 10, verify: { level: 0.01, records, random: () => draws.shift() ?? 1 } })
  await pixelsReady()
  t.is(coordinator.plan.phases.length, 2)
  const restarts: Array<number | undefined> = []
  coordinator.on('excluded', (_peer, why) => { restarts.push(why.restartPhase) })
  /** A histogram that still counts every pixel once, with one pixel moved to the next bin. */
  const lie = (summary: Uint8Array): Uint8Array => {
    const words = new Uint32Array(summary.buffer, summary.byteOffset, summary.length / 4)
    const i = words.findIndex(n => n > 0)
    words[i]!--
    words[(i + 1) % 256]!++
    return summary
  }
  const work = async (peer: string, lying = false): Promise<number | undefined> => {
    const claimed = coordinator.claim(peer)
    clock.advance(11)
    const outcome = await claimed
    if (outcome.kind !== 'grant') return undefined
    const { lease, tile, phase } = outcome.grant
    const contexts = new Map(coordinator.contextsFor(tile.index).map(c => [c.step, c.data]))
    const out = await processTile(extract(source, tile.haloed), tile, { plan: coordinator.plan, phase, contexts })
    const data = out instanceof Uint8Array ? (lying ? lie(out) : out) : out.data
    t.is(coordinator.result(peer, tile.index, lease.leaseId, tileChecksum(data), data, phase).status, 'accepted')
    return tile.index
  }
  t.is(await work('liar', true), 0, 'reduced on its word')
  t.is(await work('liar', true), 1, 'checked')
  t.is(await work('b'), 1)
  t.is(await work('c'), 1)
  t.deepEqual(restarts, [0], 'the summary phase starts over')
  t.is(coordinator.progress.done, 0)
  while (await work('b') !== undefined) {}
  t.true((await coordinator.finished).data.equals(reference.data))
})

test('a liar caught in one job is excluded at once from another running here: its tiles there are redone, its leases there end', async t => {
  const records = new TrustRecords()
  records.of('liar').agreed = 100
  const one = await job(0.01, records)
  const other = await job(0.01, records, () => 1)
  t.like(await other.work('liar', true), { tile: 0 }, 'taken on its word in the other job')
  const held = await other.claim('liar')
  t.is(held.kind, 'grant')
  t.like(await one.work('liar', true), { tile: 0 }, 'checked in this one')
  t.like(await one.work('b'), { tile: 0 })
  t.like(await one.work('c'), { tile: 0 })
  t.deepEqual(other.excluded, ['liar'], 'the other job heard at once')
  if (held.kind === 'grant') t.false(other.coordinator.renew('liar', held.grant.lease.leaseId), 'its lease there is gone')
  while (await other.work('b') !== undefined) {}
  t.true((await other.coordinator.finished).data.equals(other.reference.data), 'its tile 0 there was redone')
  t.false(other.coordinator.tilesByPeer.has('liar'), 'and counted for the peer that redid it')
})

test('a check no other peer takes is given up after a while: one result is taken on its word (and said so); two that disagree fail the job', async t => {
  const alone = await job(0.02)
  while (await alone.work('a') !== undefined) {}
  t.is(alone.coordinator.verifyFigures.checked, 0)
  // Nobody but a works on it: its checks wait, then are given up.
  for (let i = 0; i < 11 && alone.coordinator.isRunning; i++) alone.clock.advance(1000)
  t.true((await alone.coordinator.finished).data.equals(alone.reference.data))
  t.true(alone.coordinator.verifyFigures.skipped > 0, JSON.stringify(alone.coordinator.verifyFigures))

  const split = await job('all')
  t.like(await split.work('a'), { tile: 0 })
  t.like(await split.work('b', true), { tile: 0 }, 'b checks it and disagrees')
  for (let i = 0; i < 11; i++) split.clock.advance(1000)
  await t.throwsAsync(split.coordinator.finished, { message: /^tile 0 of phase 1: 2 peers computed it and disagree, and no other peer took it within 10 s to settle it$/ })
})

test('phases that start over after the next began: a worker\'s session gets the new shared context, not the one it kept; the output is exact', async t => {
  const steps = resolvePipeline(parseOps('equalize'))
  const source = noiseImage(64, 64, { channels: 3, depth: 8 }, 29)
  const reference = await runPipeline({ ...source, data: Buffer.from(source.data) }, steps)
  const clock = manualClock()
  const records = new TrustRecords()
  for (const p of ['liar', 'w', 'c']) records.of(p).agreed = 100
  let checkNext = false
  const draw = (): number => { const d = checkNext ? 0 : 1; checkNext = false; return d }
  const coordinator = new JobCoordinator({ jobId: 'j', jobKey: 'a'.repeat(64), self: SELF, ...inputOf(source, steps), steps, tileSize: 32, leaseMs: 1000, clock, parkMs: 10, verify: { level: 0.01, records, random: draw } })
  await pixelsReady()
  const restarts: Array<number | undefined> = []
  coordinator.on('excluded', (_peer, why) => { restarts.push(why.restartPhase) })
  /** A peer that talks to the coordinator directly; `lie` changes what it computed. */
  const direct = async (peer: string, lie?: (out: Uint8Array) => void): Promise<number> => {
    const outcome = await coordinator.claim(peer)
    if (outcome.kind !== 'grant') throw new Error(`${peer}: ${outcome.kind}`)
    const { lease, tile, phase } = outcome.grant
    const contexts = new Map(coordinator.contextsFor(tile.index).map(c => [c.step, c.data]))
    const out = await processTile(extract(source, tile.haloed), tile, { plan: coordinator.plan, phase, contexts })
    const data = Buffer.from(out instanceof Uint8Array ? out : out.data)
    lie?.(data)
    t.is(coordinator.result(peer, tile.index, lease.leaseId, tileChecksum(data), data, phase).status, 'accepted')
    return tile.index
  }
  // w works as a real worker does: over a tile session, its link keeping the shared contexts it was sent.
  const [served, mine] = memoryChannelPair()
  const session = serveTileSession(served, 'w', id => id === 'j' ? coordinator : undefined, { idleTimeoutMs: 60_000 })
  const link = new CoordinatorLink(mine, { jobId: 'j', coordinator: SELF, addrs: [], jobKey: 'a'.repeat(64) }, { requestTimeoutMs: 10_000 })
  await link.join()
  const viaLink = async (): Promise<number | undefined> => {
    const reply = await link.claim()
    if (reply.kind !== 'grant') return undefined
    const { work } = reply
    const out = await processTile(extract(source, work.tile.haloed), work.tile, { plan: link.plan, phase: work.phase, contexts: work.contexts })
    const data = out instanceof Uint8Array ? out : out.data
    t.is(await link.result({ phase: work.phase, tile: work.tile.index, leaseId: work.leaseId, checksum: tileChecksum(data), body: data }), 'accepted')
    return work.tile.index
  }
  // A histogram that still counts every pixel once, its darkest pixels moved to white: a very different table.
  const lieSummary = (summary: Uint8Array): void => {
    const words = new Uint32Array(summary.buffer, summary.byteOffset, summary.length / 4)
    const i = words.findIndex(n => n > 0)
    words[255]! += words[i]!
    words[i] = 0
  }
  t.is(await direct('liar', lieSummary), 0, 'reduced on its word')
  for (let i = 0; i < 3; i++) await viaLink()
  t.is(coordinator.phase, 1, 'the next phase began, with the table the lie made')
  checkNext = true
  t.is(await direct('liar', d => { d[0]! ^= 1 }), 0, 'caught out on a tile of the next phase')
  t.is(await viaLink(), 0, 'w checks it, with the shared table it was sent')
  t.is(await direct('c'), 0, 'c settles it')
  t.deepEqual(restarts, [0])
  t.is(coordinator.phase, 0)
  while (coordinator.isRunning) await viaLink()
  t.true((await coordinator.finished).data.equals(reference.data), 'w was sent the new table')
  await link.close()
  await session
})
