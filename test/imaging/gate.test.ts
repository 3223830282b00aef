import test from 'ava'
import { meteredSemaphore, meteringWaits, processTile, planTiles, resolvePipeline, parseOps, semaphore, type Gate } from '../../src/imaging/index.ts'
import { noiseImage } from '../../sim/model.ts'
import { extract } from '../../src/imaging/pixels/raw.ts'

test('a semaphore holds at most its permits at once, and serves waiters in order', async t => {
  const gate = semaphore(2)
  let inside = 0
  let most = 0
  const order: number[] = []
  const releases: Array<() => void> = []
  const runs = [0, 1, 2, 3, 4].map(async i => await gate(async () => {
    order.push(i)
    most = Math.max(most, ++inside)
    await new Promise<void>(resolve => releases.push(resolve))
    inside--
  }))
  // Let every run reach the gate, then release one holder at a time.
  for (let released = 0; released < 5; released++) {
    await new Promise(resolve => setImmediate(resolve))
    releases.shift()!()
  }
  await Promise.all(runs)
  t.is(most, 2)
  t.deepEqual(order, [0, 1, 2, 3, 4])
})

test('a failed run gives its permit back', async t => {
  const gate = semaphore(1)
  await t.throwsAsync(gate(async () => { throw new Error('boom') }), { message: 'boom' })
  t.is(await gate(async () => 7), 7)
})

test('permits must be a positive integer', t => {
  t.throws(() => semaphore(0), { instanceOf: RangeError })
  t.throws(() => meteredSemaphore(0, () => 0), { instanceOf: RangeError })
})

test('a metered gate adds each pass\'s wait for a place to its unit\'s', async t => {
  let now = 0
  // One place: b and c queue behind a, then c behind b.
  const gate = meteredSemaphore(1, () => now)
  const ends: Array<() => void> = []
  const pass = async (waits: { ms: number }): Promise<void> => { await meteringWaits(waits, async () => { await gate(async () => { await new Promise<void>(resolve => ends.push(resolve)) }) }) }
  const settle = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }
  const [a, b, c] = [{ ms: 0 }, { ms: 0 }, { ms: 0 }]
  const runs = [pass(a)]
  now = 10
  runs.push(pass(b))
  now = 20
  runs.push(pass(c))
  await settle()
  t.is(ends.length, 1)
  now = 100
  ends.shift()!()
  await settle()
  // b ran from a's end (100) to 130; c from b's end.
  now = 130
  ends.shift()!()
  await settle()
  now = 150
  ends.shift()!()
  await Promise.all(runs)
  t.deepEqual([a.ms, b.ms, c.ms], [0, 90, 110])
  // Outside meteringWaits a pass is gated all the same, its wait counted nowhere.
  t.is(await gate(async () => 7), 7)
})

test('a metered gate with a place for each pass: no pass waits', async t => {
  let now = 0
  const gate = meteredSemaphore(2, () => now)
  const waits = { ms: 0 }
  await meteringWaits(waits, async () => {
    await Promise.all([gate(async () => { now += 50 }), gate(async () => { now += 50 })])
  })
  t.is(waits.ms, 0)
})

test('processTile sends each libvips pass through its gate, and only those', async t => {
  const image = noiseImage(300, 200, { channels: 3, depth: 8 }, 3)
  const steps = resolvePipeline(parseOps('blur:sigma=1,sobel,invert'))
  const [tile] = planTiles(image.width, image.height, 128, 3).slice(4, 5)
  let passes = 0
  const counting: Gate = async work => { passes++; return await work() }
  const gated = await processTile(extract(image, tile!.haloed), tile!, steps, { gate: counting })
  const plain = await processTile(extract(image, tile!.haloed), tile!, steps)
  // blur and sobel's greyscale are libvips passes; sobel's gradient and invert are JavaScript.
  t.is(passes, 2)
  t.true(gated.data.equals(plain.data))
})
