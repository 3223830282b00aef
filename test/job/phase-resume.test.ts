import test from 'ava'
import { JobCoordinator } from '../../src/job/coordinator.ts'
import type { ClaimOutcome } from '../../src/job/tiled-job.ts'
import { contextDigest, tileChecksum } from '../../src/protocol/checksum.ts'
import { tileBitmap, tilesIn } from '../../src/protocol/tile-set.ts'
import { extract, parseOps, processTile, resolvePipeline, runPipeline, type RawImage } from '../../src/imaging/index.ts'
import { noiseImage } from '../../sim/model.ts'
import { manualClock } from '../helpers/clock.ts'
import { inputOf, pixelsReady } from '../helpers/job-input.ts'

interface Kept { data: Buffer, context?: string }

const steps = resolvePipeline(parseOps('equalize,canny:low=40:high=90'))

function coordinator (source: RawImage, collect?: { holders: string[], windowMs: number }): JobCoordinator {
  return new JobCoordinator({ jobId: 'j', jobKey: 'k'.repeat(64), ...inputOf(source, steps), steps, tileSize: 32, leaseMs: 1000, clock: manualClock(), ...(collect !== undefined ? { collect } : {}) })
}

/** Computes one granted tile as a worker would, and keeps a copy as a worker's cache does (with its contexts' digest past phase 0). */
async function compute (job: JobCoordinator, source: RawImage, outcome: ClaimOutcome, kept?: Map<number, Map<number, Kept>>): Promise<void> {
  if (outcome.kind !== 'grant') throw new Error(`expected a grant, got ${outcome.kind}`)
  const { lease, tile, phase } = outcome.grant
  const contexts = new Map(job.contextsFor(tile.index).map(c => [c.step, c.data]))
  const out = await processTile(extract(source, tile.haloed), tile, { plan: job.plan, phase, contexts })
  const data = Buffer.from(out instanceof Uint8Array ? out : out.data)
  if (kept !== undefined) {
    const phaseKept = kept.get(phase) ?? new Map<number, Kept>()
    phaseKept.set(tile.index, { data: Buffer.from(data), ...(phase > 0 ? { context: contextDigest(contexts) } : {}) })
    kept.set(phase, phaseKept)
  }
  if (job.result('w', tile.index, lease.leaseId, tileChecksum(data), data, phase).status !== 'accepted') throw new Error(`tile ${tile.index} of phase ${phase} refused`)
}

/** A first coordinator runs phases 0 and 1 and half of phase 2, then is lost: what its worker kept. */
async function keptByFirst (source: RawImage): Promise<Map<number, Map<number, Kept>>> {
  const first = coordinator(source)
  await pixelsReady()
  const kept = new Map<number, Map<number, Kept>>()
  while (first.phase < 2 || first.phaseDone < first.tiles.length / 2) await compute(first, source, await first.claim('w'), kept)
  first.cancel(new Error('lost'))
  return kept
}

const heldOf = (kept: Map<number, Map<number, Kept>>): Map<number, Uint8Array> => new Map([...kept].map(([phase, tiles]) => [phase, tileBitmap(tiles.keys())]))

test('a job in phases resumes where it was: each phase\'s kept tiles are offered as it starts, only the rest computed, the output exact', async t => {
  const source = noiseImage(90, 70, { channels: 3, depth: 8 }, 8)
  const reference = await runPipeline({ ...source, data: Buffer.from(source.data) }, steps)
  const kept = await keptByFirst(source)
  const job = coordinator(source, { holders: ['h'], windowMs: 3000 })
  await pixelsReady()
  const recovered: Array<[number, number, number]> = []
  job.on('recovered', (tiles, total, phase) => { recovered.push([tiles, total, phase]) })
  const offer = (phase: number, tiles: Uint8Array): void => {
    for (const tile of tilesIn(tiles)) {
      const { data, context } = kept.get(phase)!.get(tile)!
      t.is(job.offer('h', tile, tileChecksum(data), data, { phase, ...(context !== undefined ? { context } : {}) }).status, 'accepted', `tile ${tile} of phase ${phase}`)
    }
  }
  const first = job.join('h', heldOf(kept))!
  t.is(first.phase, 0)
  offer(0, first.tiles)
  // Phase 0's summaries reduced as before: phase 1 starts with the holder's tiles reserved, told at its next claim.
  t.is(job.phase, 1)
  for (const phase of [1, 2]) {
    const told = await job.claim('h')
    if (told.kind !== 'offers') throw new Error(`expected offers, got ${told.kind}`)
    t.is(told.offer.phase, phase)
    t.deepEqual(tilesIn(told.offer.tiles), [...kept.get(phase)!.keys()].sort((a, b) => a - b))
    offer(phase, told.offer.tiles)
  }
  t.is(job.phase, 2)
  let granted = 0
  while (job.isRunning) {
    await compute(job, source, await job.claim('w'))
    granted++
  }
  t.true((await job.finished).data.equals(reference.data))
  const keptLast = kept.get(2)!.size
  t.is(granted, job.tiles.length - keptLast, 'only the tiles nobody had finished are computed')
  t.deepEqual(recovered, [[9, 9, 0], [9, 9, 1], [keptLast, 9, 2]])
})

test('a kept tile of a later phase computed with other summaries is refused, and computed again', async t => {
  const source = noiseImage(90, 70, { channels: 3, depth: 8 }, 8)
  const reference = await runPipeline({ ...source, data: Buffer.from(source.data) }, steps)
  const kept = await keptByFirst(source)
  const job = coordinator(source, { holders: ['h'], windowMs: 3000 })
  await pixelsReady()
  // The holder kept phase 1 only, one tile of it with another reduction's digest.
  const phase1 = kept.get(1)!
  const stale = phase1.get(0)!
  phase1.set(0, { ...stale, context: 'f'.repeat(32) })
  job.join('h', new Map([[1, tileBitmap(phase1.keys())]]))
  // Phase 0 is computed afresh; phase 1 begins with the holder's reservations.
  while (job.phase === 0) await compute(job, source, await job.claim('w'))
  const told = await job.claim('h')
  if (told.kind !== 'offers') throw new Error(told.kind)
  for (const tile of tilesIn(told.offer.tiles)) {
    const { data, context } = phase1.get(tile)!
    const outcome = job.offer('h', tile, tileChecksum(data), data, { phase: 1, context: context! })
    t.is(outcome.status, tile === 0 ? 'rejected' : 'accepted', `tile ${tile}`)
    if (tile === 0) t.regex(outcome.reason!, /computed with other summaries/)
  }
  t.is(job.offer('h', 1, '00000000', Buffer.alloc(1), { phase: 0 }).status, 'duplicate', 'an offer of a phase that is over')
  t.is(job.offer('h', 1, '00000000', Buffer.alloc(1), { phase: 2 }).status, 'rejected', 'of a phase not begun')
  // The refused tile went back: computed, with the rest of the job.
  const next = await job.claim('w')
  t.is(next.kind === 'grant' ? next.grant.tile.index : -1, 0)
  await compute(job, source, next)
  while (job.isRunning) await compute(job, source, await job.claim('w'))
  t.true((await job.finished).data.equals(reference.data))
})

test('a summary phase over, the summaries this peer\'s own worker made go to the next two other workers that claim, to keep', async t => {
  const source = noiseImage(90, 70, { channels: 3, depth: 8 }, 8)
  const job = new JobCoordinator({ jobId: 'j', jobKey: 'k'.repeat(64), self: 'me', ...inputOf(source, steps), steps, tileSize: 32, leaseMs: 1000, clock: manualClock() })
  await pixelsReady()
  const own: number[] = []
  // Phase 0: this peer's own worker summarises every other tile.
  for (let i = 0; job.phase === 0; i++) {
    const peer = i % 2 === 0 ? 'me' : 'w'
    const outcome = await job.claim(peer)
    if (outcome.kind !== 'grant') throw new Error(outcome.kind)
    const { lease, tile, phase } = outcome.grant
    const out = await processTile(extract(source, tile.haloed), tile, { plan: job.plan, phase, contexts: new Map() })
    const data = Buffer.from(out instanceof Uint8Array ? out : out.data)
    if (peer === 'me') own.push(tile.index)
    t.is(job.result(peer, tile.index, lease.leaseId, tileChecksum(data), data, phase).status, 'accepted')
  }
  t.is((await job.claim('me')).kind, 'grant', 'not to itself')
  for (const peer of ['w', 'v']) {
    const told = await job.claim(peer)
    if (told.kind !== 'keep') throw new Error(`expected keep, got ${told.kind}`)
    t.is(told.keep.phase, 0)
    t.deepEqual(told.keep.tiles.map(k => k.tile).sort((a, b) => a - b), own.sort((a, b) => a - b))
    t.true(told.keep.tiles.every(k => tileChecksum(k.data) === k.checksum && k.context === undefined))
  }
  t.is((await job.claim('w')).kind, 'grant', 'once a peer')
  t.is((await job.claim('u')).kind, 'grant', 'two keepers are enough')
})
