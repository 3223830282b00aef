import test from 'ava'
import { processTile, planTiles, resolvePipeline, parseOps, semaphore, type Gate } from '../../src/imaging/index.ts'
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
