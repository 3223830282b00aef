import test from 'ava'
import { batchLane, type BatchLaneContext } from '../../src/worker/batch-lane.ts'
import type { ClaimReply, CoordinatorLink } from '../../src/worker/coordinator-link.ts'
import type { BatchSession } from '../../src/worker/job-session.ts'
import { LeaseKeeper } from '../../src/worker/lease-keeper.ts'
import { semaphore } from '../../src/imaging/index.ts'
import { manualClock } from '../helpers/clock.ts'

/** A batch's link that grants `images` tasks, one a claim, and records what comes back. */
function batchLink (images: number): { link: CoordinatorLink, released: string[], outputs: number[] } {
  const released: string[] = []
  const outputs: number[] = []
  let next = 0
  const link = {
    ref: { jobId: 'batch', coordinator: 'elsewhere', addrs: [] },
    batch: { quality: 90, images },
    steps: [],
    claim: async (): Promise<ClaimReply> => next < images
      ? { kind: 'task', task: { leaseId: `l${next}`, leaseMs: 60_000, slot: next, key: String(next++).padStart(64, '0'), format: 'png', file: Buffer.alloc(1) } }
      : { kind: 'none', reason: 'done' },
    release: async (leaseId: string) => { released.push(leaseId) },
    output: async ({ slot }: { slot: number }) => { outputs.push(slot); return 'accepted' as const },
    reportFailure: async () => {},
  }
  return { link: link as unknown as CoordinatorLink, released, outputs }
}

test('a batch\'s image waiting its turn at the gate goes back, not begun, when another job comes to be owed the lane', async t => {
  const clock = manualClock()
  const { link, released, outputs } = batchLink(10)
  const gate = semaphore(1)
  // The slot is busy: the lane's first image waits its turn.
  let free!: () => void
  const busy = gate(async () => { await new Promise<void>(resolve => { free = resolve }) })
  let owed = true
  const processed: number[] = []
  const lane: BatchLaneContext = {
    clock,
    keeper: new LeaseKeeper({ clock }),
    signal: new AbortController().signal,
    gate,
    peerId: 'me',
    onAccepted: () => {},
    stay: () => owed,
    mayPark: () => true,
    owed: () => owed,
    limits: { maxPixels: 1e8 },
    processImage: async (_file, _steps, _options, g) => await g(async () => {
      processed.push(processed.length)
      return { data: Buffer.from('out'), width: 1, height: 1 }
    }),
  }
  const session: BatchSession = { kind: 'batch', link }
  const ended = batchLane(session, lane)
  // Meanwhile a small job is announced, and the shares give it the lane.
  owed = false
  free()
  await busy
  t.is(await ended, 'yield')
  t.deepEqual(processed, [], 'nothing begun')
  t.deepEqual(outputs, [])
  // The image granted and the one prefetched both went back.
  await new Promise(resolve => setImmediate(resolve))
  t.deepEqual(released.sort(), ['l0', 'l1'])
})

test('an image whose turn comes while the lane is still its job\'s is processed and sent', async t => {
  const clock = manualClock()
  const { link, outputs } = batchLink(2)
  const lane: BatchLaneContext = {
    clock,
    keeper: new LeaseKeeper({ clock }),
    signal: new AbortController().signal,
    gate: semaphore(1),
    peerId: 'me',
    onAccepted: () => {},
    stay: () => true,
    mayPark: () => true,
    owed: () => true,
    limits: { maxPixels: 1e8 },
    processImage: async (_file, _steps, _options, g) => await g(async () => ({ data: Buffer.from('out'), width: 1, height: 1 })),
  }
  t.is(await batchLane({ kind: 'batch', link }, lane), 'done')
  t.deepEqual(outputs, [0, 1])
})
