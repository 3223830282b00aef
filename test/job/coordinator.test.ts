import test from 'ava'
import { JobCoordinator } from '../../src/job/coordinator.ts'
import { tileChecksum } from '../../src/protocol/checksum.ts'
import { inputOf, pixelsReady } from '../helpers/job-input.ts'
import { unpackPixels } from '../../src/protocol/pixels.ts'
import { TilePixels } from '../../src/job/tile-pixels.ts'
import { manualClock } from '../helpers/clock.ts'
import { extract, planJob, processTile, parseOps, resolvePipeline, runPipeline, TileMemo } from '../../src/imaging/index.ts'
import { noiseImage } from '../../sim/model.ts'

test('a grant brings its tile\'s haloed pixels (raw in memory for this peer\'s own worker, compressed for a link); a lost tile is granted again', async t => {
  const steps = resolvePipeline(parseOps('median:size=3'))
  // Smooth enough that zstd pays: the link's pixels go compressed.
  const source = noiseImage(200, 130, { channels: 3, depth: 8 }, 5)
  for (let i = 0; i < source.data.length; i++) source.data[i] = (i >> 9) & 0xff
  const reference = await runPipeline(source, steps)
  const clock = manualClock()
  const job = new JobCoordinator({ jobId: 'j', jobKey: 'k'.repeat(64), self: 'me', ...inputOf(source, steps), steps, tileSize: 32, leaseMs: 1000, clock })
  await pixelsReady()

  // A worker that will vanish takes a tile in the last row.
  const passed: string[] = []
  for (;;) {
    const outcome = await job.claim('vanishing')
    if (outcome.kind !== 'grant') throw new Error(outcome.kind)
    if (outcome.grant.tile.core.y === 128) break
    passed.push(outcome.grant.lease.leaseId)
  }
  for (const leaseId of passed) job.release('vanishing', leaseId)
  let compressed = 0
  const complete = async (peer: string): Promise<boolean> => {
    const outcome = await job.claim(peer)
    if (outcome.kind !== 'grant') return false
    const { lease, tile } = outcome.grant
    const sent = await job.tilePixels(tile, peer, true)
    if (peer === 'me') t.is(sent.encoding, undefined, 'in memory, raw')
    if (sent.encoding !== undefined) compressed++
    const expected = extract(source, tile.haloed)
    const data = unpackPixels(Buffer.from(sent.body), sent.encoding, expected.data.length)
    t.true(data.equals(expected.data), `tile ${tile.index}: the haloed pixels`)
    const core = await processTile({ ...expected, data }, tile, steps)
    t.is(job.result(peer, tile.index, lease.leaseId, tileChecksum(core.data), core.data).status, 'accepted')
    return true
  }
  let turn = 0
  while (job.leases.pendingCount > 0) await complete(turn++ % 2 === 0 ? 'me' : 'steady')
  t.true(compressed > 0, 'a link\'s pixels went compressed')

  clock.advance(1001)
  t.is(job.leases.stats.expired, 1)
  t.true(await complete('steady'), 'the expired tile is granted again')
  const output = await job.finished
  t.true(output.data.equals(reference.data))
})

test('a resumed job: nothing is computed until its holders have joined; what they offer is checked and placed', async t => {
  const steps = resolvePipeline(parseOps('invert'))
  const source = noiseImage(64, 32, { channels: 3, depth: 8 }, 9)
  const reference = await runPipeline({ ...source, data: Buffer.from(source.data) }, steps)
  const clock = manualClock()
  const job = new JobCoordinator({ jobId: 'j', jobKey: 'k'.repeat(64), ...inputOf(source, steps), steps, tileSize: 32, leaseMs: 1000, clock, collect: { holders: ['h1', 'h2'], windowMs: 3000 } })
  await pixelsReady()
  const recovered: number[] = []
  job.on('recovered', tiles => { recovered.push(tiles) })
  const early = job.claim('w')
  // h1 held tile 0 from the last coordinator: it is reserved for h1.
  const reserved = job.join('h1', new Map([[0, Uint8Array.of(0b01)]]))!
  t.deepEqual({ ...reserved, tiles: [...reserved.tiles] }, { phase: 0, tiles: [0b01] })
  const tile0 = job.tiles[0]!
  const core0 = extract(reference, tile0.core)
  t.is(job.offer('h1', 0, '00000000', core0.data).status, 'rejected', 'a bad checksum is refused')
  t.like(job.offer('h1', 0, tileChecksum(core0.data), core0.data), { status: 'rejected', reason: 'tile 0 was not reserved for this peer' }, 'the refusal freed the reservation')
  // h2 holds nothing; once it has joined, work goes out, the refused tile first.
  t.is(job.join('h2'), undefined)
  const first = await early
  t.is(first.kind === 'grant' ? first.grant.tile.index : -1, 0)
  clock.advance(1)
  t.deepEqual(recovered, [0])
})

test('a resumed job whose holder never comes: the window passes, and its tiles are computed', async t => {
  const steps = resolvePipeline(parseOps('invert'))
  const clock = manualClock()
  const job = new JobCoordinator({ jobId: 'j', jobKey: 'k'.repeat(64), ...inputOf(noiseImage(40, 20, { channels: 1, depth: 8 }, 3), steps), steps, tileSize: 32, leaseMs: 1000, clock, parkMs: 60_000, collect: { holders: ['gone'], windowMs: 3000 } })
  await pixelsReady()
  const claim = job.claim('w')
  let granted = false
  void claim.then(o => { granted = o.kind === 'grant' })
  clock.advance(2999)
  await Promise.resolve()
  t.false(granted)
  clock.advance(1)
  t.is((await claim).kind, 'grant')
})

test('offers from a holder complete the job without any computing', async t => {
  const steps = resolvePipeline(parseOps('invert'))
  const source = noiseImage(64, 40, { channels: 3, depth: 8 }, 4)
  const reference = await runPipeline({ ...source, data: Buffer.from(source.data) }, steps)
  const job = new JobCoordinator({ jobId: 'j', jobKey: 'k'.repeat(64), ...inputOf(source, steps), steps, tileSize: 32, leaseMs: 1000, clock: manualClock(), collect: { holders: ['h'], windowMs: 3000 } })
  await pixelsReady()
  const recovered: Array<[number, number]> = []
  job.on('recovered', (tiles, total) => { recovered.push([tiles, total]) })
  const all = Uint8Array.of(0b1111)
  t.deepEqual([...job.join('h', new Map([[0, all]]))!.tiles], [0b1111])
  for (const tile of job.tiles) {
    const core = extract(reference, tile.core)
    t.is(job.offer('h', tile.index, tileChecksum(core.data), core.data).status, 'accepted')
  }
  t.true((await job.finished).data.equals(reference.data))
  t.is(job.leases.stats.recovered, 4)
  t.is(job.leases.stats.granted, 0)
  t.deepEqual(recovered, [[4, 4]], 'reported once, though the last offer finished the job')
})

test('phases: summaries are checked and reduced, then the next phase is granted with its contexts; a stale phase\'s result is a duplicate', async t => {
  const steps = resolvePipeline(parseOps('equalize,canny:low=40:high=90'))
  const source = noiseImage(90, 70, { channels: 3, depth: 8 }, 8)
  const reference = await runPipeline(source, steps)
  const job = new JobCoordinator({ jobId: 'j', jobKey: 'k'.repeat(64), ...inputOf(source, steps), steps, tileSize: 32, leaseMs: 1000, clock: manualClock() })
  await pixelsReady()
  t.is(job.info().phases, 3)
  const phases: number[] = []
  job.on('phase', phase => phases.push(phase))
  const computeAll = async (): Promise<void> => {
    for (;;) {
      const outcome = await job.claim('w')
      if (outcome.kind !== 'grant') return
      const { lease, tile, phase } = outcome.grant
      const contexts = new Map(job.contextsFor(tile.index).map(c => [c.step, c.data]))
      const out = await processTile(extract(source, tile.haloed), tile, { plan: job.plan, phase, contexts })
      const data = out instanceof Uint8Array ? out : out.data
      if (phase === 0 && tile.index === 0) {
        t.regex(job.result('w', tile.index, lease.leaseId, tileChecksum(data.subarray(4)), data.subarray(4), phase).reason!, /histogram summary is 1024 bytes here, not 1020/)
        t.is(job.result('w', tile.index, lease.leaseId, tileChecksum(data), data, phase + 1).status, 'rejected', 'a phase not begun')
      }
      t.is(job.result('w', tile.index, lease.leaseId, tileChecksum(data), data, phase).status, 'accepted')
      if (phase === 1 && tile.index === 0) t.is(job.result('w', 0, lease.leaseId, tileChecksum(data), data, 0).status, 'duplicate', 'a phase that is over')
      if (job.phase === 2 && job.progress.done === 2 * job.tiles.length) return
    }
  }
  await computeAll()
  t.deepEqual(phases, [1, 2])
  t.deepEqual(job.progress, { done: 2 * 9, total: 3 * 9 })
  t.true(job.contextsFor(0).some(c => c.shared), 'the histogram\'s table is shared by every tile')
  t.true(job.contextsFor(0).some(c => !c.shared), 'canny\'s edge pixels are each tile\'s own')
  await computeAll()
  const output = await job.finished
  t.true(output.data.equals(reference.data))
})

test('phases: a peer is offered the tiles it summarised first (its worker kept their classification)', async t => {
  const steps = resolvePipeline(parseOps('canny'))
  const source = noiseImage(96, 64, { channels: 1, depth: 8 }, 3)
  const job = new JobCoordinator({ jobId: 'j', jobKey: 'k'.repeat(64), ...inputOf(source, steps), steps, tileSize: 32, leaseMs: 1000, clock: manualClock() })
  await pixelsReady()
  const by = new Map<number, string>()
  const finish = async (peer: string): Promise<{ tile: number, phase: number } | undefined> => {
    const outcome = await job.claim(peer)
    if (outcome.kind !== 'grant') return undefined
    const { lease, tile, phase } = outcome.grant
    const contexts = new Map(job.contextsFor(tile.index).map(c => [c.step, c.data]))
    const out = await processTile(extract(source, tile.haloed), tile, { plan: job.plan, phase, contexts })
    const data = out instanceof Uint8Array ? out : out.data
    t.is(job.result(peer, tile.index, lease.leaseId, tileChecksum(data), data, phase).status, 'accepted')
    return { tile: tile.index, phase }
  }
  // Phase 0: a takes tiles 0, 2, 4; b takes 1, 3, 5.
  for (let i = 0; i < 6; i++) {
    const peer = i % 2 === 0 ? 'a' : 'b'
    by.set((await finish(peer))!.tile, peer)
  }
  t.is(job.phase, 1)
  // Phase 1: b asks first, and still gets its own.
  const first = [await finish('b'), await finish('b'), await finish('a')]
  t.deepEqual(first.map(g => g!.tile), [1, 3, 0])
  t.true(first.every(g => g!.phase === 1))
})

test('the tile memo keeps what fits, oldest out first, and gives each value once', t => {
  const memo = new TileMemo(10)
  memo.put('a', new Uint8Array(4))
  memo.put('b', new Uint8Array(4))
  memo.put('c', new Uint8Array(4))
  t.is(memo.take('a'), undefined, 'the oldest went to make room')
  t.is(memo.take('b')?.length, 4)
  t.is(memo.take('b'), undefined, 'taken once')
  memo.put('huge', new Uint8Array(11))
  t.is(memo.take('huge'), undefined, 'larger than the whole memo: not kept')
  t.is(memo.take('c')?.length, 4)
})

test('no tile is granted before its pixels can be cut: a claim waits for the decode, and its lease starts after', async t => {
  const steps = resolvePipeline(parseOps('invert'))
  const source = noiseImage(64, 32, { channels: 3, depth: 8 }, 4)
  const clock = manualClock()
  const { promise: decoded, resolve: decode } = Promise.withResolvers<typeof source>()
  const shape = { width: 64, height: 32, format: { channels: 3 as const, depth: 8 as const } }
  const pixels = new TilePixels(async () => await decoded, planJob(steps, shape))
  const job = new JobCoordinator({ jobId: 'j', jobKey: 'k'.repeat(64), shape, pixels, steps, tileSize: 32, leaseMs: 1000, clock, parkMs: 60_000 })
  let outcome: Awaited<ReturnType<typeof job.claim>> | undefined
  void job.claim('w').then(o => { outcome = o })
  await pixelsReady()
  t.is(outcome, undefined, 'parked while the input decodes')
  t.is(job.leases.stats.granted, 0)
  clock.advance(5000)
  decode(source)
  await pixelsReady()
  t.is(outcome?.kind, 'grant')
  const lease = (outcome as Extract<typeof outcome, { kind: 'grant' }>).grant.lease
  clock.advance(999)
  t.true(job.renew('w', lease.leaseId), 'the lease runs from the grant, not from the claim')
})
