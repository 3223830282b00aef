import test from 'ava'
import sharp from 'sharp'
import { BatchCoordinator, taskKeyOf, type BatchTask } from '../../src/job/batch.ts'
import { tileChecksum } from '../../src/protocol/checksum.ts'
import { parseOps, resolvePipeline } from '../../src/imaging/index.ts'
import { manualClock } from '../helpers/clock.ts'

const steps = resolvePipeline(parseOps('blur:sigma=2'))

function batchOf (images: number, clock = manualClock()): { batch: BatchCoordinator, clock: ReturnType<typeof manualClock>, images: BatchTask[], failed: number[] } {
  const batch = new BatchCoordinator({ jobId: 'b', self: 'me', steps, quality: 90, images, leaseMs: 1000, parkMs: 200, clock, speculation: { afterMedians: 3, maxShare: 0.5, minSamples: 2 } })
  const done: BatchTask[] = []
  const failed: number[] = []
  batch.on('image', task => { done.push(task) })
  batch.on('failed', task => { failed.push(task.index) })
  return { batch, clock, images: done, failed }
}

const task = (index: number): BatchTask => ({ index, file: Buffer.from(`file ${index}`), key: taskKeyOf(String(index).padStart(64, '0'), steps, 'png', 90, false), format: 'png' })
const size = { width: 5, height: 4 }
const output = async (width = 3, height = 2): Promise<Buffer> => await sharp({ create: { width, height, channels: 3, background: '#808080' } }).png().toBuffer()

async function granted (batch: BatchCoordinator, peer: string): Promise<{ leaseId: string, slot: number, task: BatchTask }> {
  const claim = await batch.claim(peer)
  if (claim.kind !== 'task') throw new Error(`expected a task, got ${claim.kind}`)
  return { leaseId: claim.lease.leaseId, slot: claim.lease.tile, task: claim.task }
}

test('an image is a task with its file; its output goes on with its size; the first valid output wins', async t => {
  const { batch, images } = batchOf(2)
  const sizes: Array<[number, number]> = []
  batch.on('image', (_task, out) => { sizes.push([out.width, out.height]) })
  batch.add(task(0))
  t.is(batch.heldImages, 1)
  const a = await granted(batch, 'a')
  t.is(a.task.index, 0)
  t.deepEqual(a.task.file, Buffer.from('file 0'))
  const png = await output(5, 4)
  t.is(batch.result('a', a.slot, a.leaseId, '00000000', png, size).status, 'rejected', 'a checksum that does not match')
  t.like(batch.result('a', a.slot, a.leaseId, tileChecksum(Buffer.alloc(0)), Buffer.alloc(0), size), { status: 'rejected' }, 'an empty output')
  t.is(batch.result('a', a.slot, a.leaseId, tileChecksum(png), png, size).status, 'accepted')
  t.is(batch.result('a', a.slot, a.leaseId, tileChecksum(png), png, size).status, 'duplicate')
  t.deepEqual(sizes, [[5, 4]])
  t.deepEqual(images.map(i => i.index), [0])
  t.is(batch.heldImages, 0, 'the file goes once its output is in')
  t.is(batch.heldBytes, 0)
  t.is(batch.imagesByPeer.get('a'), 1)
})

test('a claim waits for the next upload; images not yet uploaded are never granted', async t => {
  const { batch, clock } = batchOf(3)
  const early = batch.claim('a')
  clock.advance(100)
  batch.add(task(7))
  const claim = await early
  t.is(claim.kind, 'task')
  if (claim.kind === 'task') t.is(claim.task.index, 7)
  const idle = batch.claim('b')
  clock.advance(200)
  t.is((await idle).kind, 'wait', 'nothing uploaded: told to wait when the park time is up')
})

test('a lease not renewed goes back to the pool; the late output still counts if nobody beat it', async t => {
  const { batch, clock, images } = batchOf(1)
  batch.add(task(0))
  const a = await granted(batch, 'a')
  clock.advance(1001)
  const b = await granted(batch, 'b')
  t.is(b.slot, a.slot)
  t.is(batch.stats.expired, 1)
  const png = await output()
  t.is(batch.result('a', a.slot, a.leaseId, tileChecksum(png), png, size).status, 'accepted')
  t.is(batch.result('b', b.slot, b.leaseId, tileChecksum(png), png, size).status, 'duplicate')
  t.is(images.length, 1)
})

test('an image fails where this peer\'s worker fails it, or two others do, or one twice; else it goes to another peer', async t => {
  const { batch, failed } = batchOf(4)
  for (let i = 0; i < 4; i++) batch.add(task(i))
  // Image 0: one other peer fails it once, then another: failed.
  const first = await granted(batch, 'x')
  batch.failed('x', first.slot, 'cannot decode')
  t.deepEqual(failed, [])
  const again = await granted(batch, 'y')
  t.is(again.slot, first.slot, 'the image went back to the pool, first in line')
  batch.failed('y', again.slot, 'cannot decode')
  t.deepEqual(failed, [first.task.index])
  // Image 1: this peer's own worker fails it: failed at once.
  const mine = await granted(batch, 'me')
  batch.failed('me', mine.slot, 'cannot decode')
  t.deepEqual(failed, [first.task.index, mine.task.index])
  // Image 2: the same other peer, twice.
  const once = await granted(batch, 'x')
  batch.failed('x', once.slot, 'cannot decode')
  const twice = await granted(batch, 'x')
  t.is(twice.slot, once.slot)
  batch.failed('x', twice.slot, 'cannot decode')
  t.deepEqual(failed, [first.task.index, mine.task.index, once.task.index])
  // A failure after the image is over changes nothing.
  batch.failed('z', once.slot, 'late')
  t.is(failed.length, 3)
  t.is(batch.heldImages, 1)
  const last = await granted(batch, 'x')
  t.is(last.task.index, 3)
})

test('a peer gone gives its images back at once; finishing answers the claims still waiting', async t => {
  const { batch } = batchOf(2)
  batch.add(task(0))
  const a = await granted(batch, 'a')
  t.is(batch.peerGone('a'), 1)
  const b = await granted(batch, 'b')
  t.is(b.slot, a.slot)
  const waiting = batch.claim('c')
  batch.finish()
  t.is((await waiting).kind, 'done')
  t.is((await batch.claim('c')).kind, 'done')
  t.like(batch.result('b', b.slot, b.leaseId, '00000000', Buffer.alloc(0), size), { status: 'duplicate' })
})

test('a straggler\'s image is copied once the pool is empty; whichever copy is first wins', async t => {
  const { batch, clock, images } = batchOf(3)
  for (let i = 0; i < 3; i++) batch.add(task(i))
  const png = await output()
  for (const peer of ['a', 'b']) {
    const g = await granted(batch, peer)
    clock.advance(10)
    t.is(batch.result(peer, g.slot, g.leaseId, tileChecksum(png), png, size).status, 'accepted')
  }
  const slow = await granted(batch, 'slow')
  clock.advance(100)
  const copy = await granted(batch, 'fast')
  t.is(copy.slot, slow.slot)
  t.is(batch.stats.speculated, 1)
  t.is(batch.result('fast', copy.slot, copy.leaseId, tileChecksum(png), png, size).status, 'accepted')
  t.is(batch.result('slow', slow.slot, slow.leaseId, tileChecksum(png), png, size).status, 'duplicate')
  t.is(images.length, 3)
})

test('only a peer that holds an image can fail it; one handed on by three peers (past their limits) fails, or by every peer there is', async t => {
  const { batch, failed, clock } = batchOf(2)
  for (const peer of ['x', 'y', 'z', 'w']) batch.joined(peer)
  t.is(batch.workers, 4)
  batch.add(task(0))
  const held = await granted(batch, 'x')
  batch.failed('y', held.slot, 'a peer that holds nothing')
  batch.failed('y', held.slot, 'a peer that holds nothing')
  t.deepEqual(failed, [], 'a failure from a peer without the image is ignored')
  batch.failed('x', held.slot, 'over --max-pixels', { handOn: true })
  t.deepEqual(failed, [])
  const again = batch.claim('x')
  clock.advance(200)
  t.is((await again).kind, 'wait', 'a peer that could not take an image on is not given it again')
  const second = await granted(batch, 'y')
  t.is(second.slot, held.slot, 'handed on: another peer gets it')
  batch.failed('y', second.slot, 'out of memory', { handOn: true })
  const third = await granted(batch, 'z')
  batch.failed('z', third.slot, 'out of memory', { handOn: true })
  t.deepEqual(failed, [0])
  t.is(batch.heldImages, 0)

  // A swarm of one: its one peer handing the image on is every peer there is.
  const alone = batchOf(1)
  alone.batch.joined('me')
  alone.batch.add(task(5))
  let reason = ''
  alone.batch.on('failed', (_task, err) => { reason = err.message })
  const mine = await granted(alone.batch, 'me')
  alone.batch.failed('me', mine.slot, 'over --max-pixels', { handOn: true })
  t.deepEqual(alone.failed, [5])
  t.is(reason, 'no peer could take it on: over --max-pixels')
  alone.batch.left('me')
  t.is(alone.batch.workers, 0)
})

test('a resumed batch grants nothing until its holders have said what they kept, and grants each what it kept first', async t => {
  const clock = manualClock()
  const batch = new BatchCoordinator({ jobId: 'b', self: 'me', steps, quality: 90, images: 3, leaseMs: 1000, parkMs: 5000, clock, collect: { holders: ['me', 'h'], windowMs: 1000 } })
  for (const peer of ['me', 'h', 'x']) batch.joined(peer)
  for (let i = 0; i < 3; i++) batch.add(task(i))
  const waiting = batch.claim('x')
  batch.held('h', [task(1).key])
  batch.held('me', [])
  const x = await waiting
  t.true(x.kind === 'task' && x.task.index !== 1, 'the image h kept is not granted to another peer')
  const h = await granted(batch, 'h')
  t.is(h.task.index, 1)
  const png = await output()
  t.is(batch.result('h', h.slot, h.leaseId, tileChecksum(png), png, { ...size, kept: true }).status, 'accepted')
  t.is(batch.stats.recovered, 1)

  // Holders that never say: the window ends the wait.
  const late = new BatchCoordinator({ jobId: 'c', self: 'me', steps, quality: 90, images: 1, leaseMs: 1000, parkMs: 5000, clock, collect: { holders: ['gone'], windowMs: 1000 } })
  late.add(task(0))
  const claim = late.claim('x')
  clock.advance(1000)
  t.is((await claim).kind, 'task')
})
