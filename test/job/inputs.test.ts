import test from 'ava'
import { InvalidImageError } from '../../src/common/errors.ts'
import { createRaw, extract, freeBuffer, parseOps, planJob, resolvePipeline, runPipeline, type RawImage } from '../../src/imaging/index.ts'
import { inputDigest, InputStore, type InputDecoder } from '../../src/job/inputs.ts'
import { TilePixels } from '../../src/job/tile-pixels.ts'
import { unpackPixels } from '../../src/protocol/pixels.ts'
import { tileChecksum } from '../../src/protocol/checksum.ts'
import { noiseImage } from '../../sim/model.ts'

const shape = { width: 4, height: 3, format: { channels: 3 as const, depth: 8 as const } }

function countingDecoder (result: () => Promise<RawImage>): { decode: InputDecoder, calls: () => number } {
  let calls = 0
  return { decode: async () => { calls++; return await result() }, calls: () => calls }
}

test('one decode per input, however many jobs hold it; the input goes with its last hold, and says so', async t => {
  const { decode, calls } = countingDecoder(async () => createRaw(4, 3, shape.format))
  const store = new InputStore({ decode, maxPixels: 100 })
  const file = Buffer.from('file')
  const sha = inputDigest(file)
  const one = store.hold(sha, file, shape)
  const two = store.hold(sha, Buffer.from('file'), shape)
  t.is(two.file, file, 'the first copy is kept')
  const [a, b] = await Promise.all([one.decoded(), two.decoded()])
  t.is(a, b)
  t.is(calls(), 1)
  t.is(store.decodedBytes, 36)
  let released = 0
  store.addEventListener('released', () => { released++ })
  one.release()
  one.release()
  t.is(store.size, 1, 'a hold released twice counts once')
  t.true(store.has(sha))
  two.release()
  t.is(store.size, 0)
  t.is(released, 1)
  t.false(store.has(sha))
  t.is(store.decodedBytes, 0)
})

test('a failed decode is every holder\'s, not retried; pixels that are not what the header said are refused', async t => {
  const broken = countingDecoder(async () => { throw new InvalidImageError('image is truncated') })
  const store = new InputStore({ decode: broken.decode, maxPixels: 100 })
  const file = Buffer.from('broken')
  const one = store.hold(inputDigest(file), file, shape)
  const two = store.hold(inputDigest(file), file, shape)
  await t.throwsAsync(one.decoded(), { message: 'image is truncated' })
  await t.throwsAsync(two.decoded(), { message: 'image is truncated' })
  t.is(broken.calls(), 1)

  const other = new InputStore({ decode: async () => createRaw(4, 4, shape.format), maxPixels: 100 })
  await t.throwsAsync(other.hold('x', Buffer.from('x'), shape).decoded(), { instanceOf: InvalidImageError, message: /decodes here to 4x4 8-bit RGB, not the 4x3 8-bit RGB its header says/ })
})

test('a job\'s tiles are cut from its prelude\'s output, run once: in memory for this peer, raw or zstd (when it pays) with a checksum for a link', async t => {
  const source = noiseImage(90, 60, { channels: 3, depth: 8 }, 2)
  for (let i = 0; i < source.data.length; i++) source.data[i] = (i >> 8) & 0xff
  const steps = resolvePipeline(parseOps('rotate:90,invert'))
  const plan = planJob(steps, { width: 90, height: 60, format: source })
  let decodes = 0
  const pixels = new TilePixels(async () => { decodes++; return source }, plan)
  const rotated = await runPipeline(source, steps.slice(0, 1))
  const rect = { x: 10, y: 20, width: 30, height: 40 }
  const want = extract(rotated, rect).data
  const local = await pixels.haloed(rect, 'memory')
  t.deepEqual([local.encoding, local.checksum], [undefined, undefined])
  t.true(Buffer.from(local.body).equals(want))
  const raw = await pixels.haloed(rect, 'raw')
  t.deepEqual([raw.encoding, raw.checksum], [undefined, tileChecksum(want)])
  t.true(Buffer.from(raw.body).equals(want))
  const remote = await pixels.haloed(rect, 'compressed')
  t.deepEqual([remote.encoding, remote.checksum], ['zstd', tileChecksum(want)])
  t.true(remote.body.length < want.length / 2)
  t.true(unpackPixels(Buffer.from(remote.body), remote.encoding, want.length).equals(want))
  t.is(decodes, 1, 'decoded (and rotated) once for every grant')
  t.deepEqual(pixels.sent, { raw: 2 * want.length, wire: want.length + remote.body.length })
  // The whole image as one tile is a copy, whichever way it goes: the worker, the wire and zstd free what they were given.
  const all = { x: 0, y: 0, width: 60, height: 90 }
  for (const to of ['compressed', 'raw', 'memory'] as const) {
    const whole = await pixels.haloed(all, to)
    freeBuffer(Buffer.from(whole.body.buffer, whole.body.byteOffset, whole.body.byteLength))
  }
  t.true(Buffer.from((await pixels.haloed(rect, 'memory')).body).equals(want), 'every later grant still cut from the image')
  pixels.release()
  await t.throwsAsync(pixels.haloed(rect, 'raw'), { message: /the job is over/ })

  const failing = new TilePixels(async () => { throw new InvalidImageError('image is truncated') }, plan)
  await t.throwsAsync(failing.ready, { message: 'image is truncated' })
  await t.throwsAsync(failing.haloed(rect, 'raw'), { message: 'image is truncated' })
})
