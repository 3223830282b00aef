import test from 'ava'
import { InvalidImageError } from '../../src/errors.ts'
import { createRaw, type RawImage } from '../../src/imaging/index.ts'
import { checkedInput, inputDigest, InputStore, type InputDecoder } from '../../src/worker/inputs.ts'

const shape = { width: 4, height: 3, format: { channels: 3 as const, depth: 8 as const } }

function countingDecoder (result: () => Promise<RawImage>): { decode: InputDecoder, calls: () => number } {
  let calls = 0
  return { decode: async () => { calls++; return await result() }, calls: () => calls }
}

test('one decode per input, however many hold it; the input goes with its last hold, and says so', async t => {
  const { decode, calls } = countingDecoder(async () => createRaw(4, 3, shape.format))
  const store = new InputStore({ decode, maxPixels: 100 })
  const file = Buffer.from('file')
  const sha = inputDigest(file)
  const host = store.hold(sha, file, shape)
  const worker = store.holdIfHere(sha, shape)!
  t.is(worker.file, file)
  const [a, b] = await Promise.all([host.decoded(), worker.decoded()])
  t.is(a, b)
  t.is(calls(), 1)
  let released = 0
  store.addEventListener('released', () => { released++ })
  host.release()
  host.release()
  t.is(store.size, 1, 'a hold released twice counts once')
  t.is(store.fileOf(sha), file)
  worker.release()
  t.is(store.size, 0)
  t.is(released, 1)
  t.is(store.fileOf(sha), undefined)
  t.is(store.holdIfHere(sha, shape), undefined)
})

test('a failed decode is every holder\'s, not retried; pixels that are not what the header said are refused', async t => {
  const broken = countingDecoder(async () => { throw new InvalidImageError('image is truncated') })
  const store = new InputStore({ decode: broken.decode, maxPixels: 100 })
  const file = Buffer.from('broken')
  const one = store.hold(inputDigest(file), file, shape)
  const two = store.holdIfHere(inputDigest(file), shape)!
  await t.throwsAsync(one.decoded(), { message: 'image is truncated' })
  await t.throwsAsync(two.decoded(), { message: 'image is truncated' })
  t.is(broken.calls(), 1)

  const other = new InputStore({ decode: async () => createRaw(4, 4, shape.format), maxPixels: 100 })
  await t.throwsAsync(other.hold('x', Buffer.from('x'), shape).decoded(), { instanceOf: InvalidImageError, message: /decodes here to 4x4 8-bit RGB, not the 4x3 8-bit RGB its header says/ })
})

test('an input is taken only if it is the one the job names', t => {
  const file = Buffer.from('the input')
  const want = { bytes: file.length, sha256: inputDigest(file) }
  t.is(checkedInput(file, want, 'job j'), file)
  t.throws(() => checkedInput(undefined, want, 'job j'), { message: 'the input of job j does not match its digest' })
  t.throws(() => checkedInput(Buffer.from('the inpuT'), want, 'job j'), { message: /does not match/ })
  t.throws(() => checkedInput(Buffer.from('the input!'), want, 'job j'), { message: /does not match/ })
})

test('a peer asked for an input still on its way here waits for it; one that never comes is not there', async t => {
  const store = new InputStore({ decode: async () => createRaw(4, 3, shape.format), maxPixels: 100 })
  const file = Buffer.from('coming')
  const sha = inputDigest(file)
  let arrive!: () => void
  const arrival = new Promise<void>(resolve => { arrive = resolve }).then(() => store.hold(sha, file, shape))
  store.expect(sha, arrival, 36)
  t.is(store.decodedBytes, 36, 'counted against the budget while on its way')
  const asked = store.fileWhenHere(sha)
  t.is(store.fileOf(sha), undefined)
  arrive()
  t.is(await asked, file)
  t.is(store.decodedBytes, 36, 'and once held')
  const lost = 'f'.repeat(64)
  store.expect(lost, Promise.reject(new Error('the fetch failed')), 1000)
  t.is(await store.fileWhenHere(lost), undefined)
  t.is(store.decodedBytes, 36, 'a fetch that failed takes nothing')
})
