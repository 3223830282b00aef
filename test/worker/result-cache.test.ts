import test from 'ava'
import type { Clock } from '../../src/common/clock.ts'
import { ResultCache } from '../../src/worker/result-cache.ts'

function clockAt (): Clock & { now: () => number, set: (ms: number) => void } {
  let now = 0
  return { now: () => now, set: ms => { now = ms }, setTimeout: () => 0, clearTimeout: () => {} }
}

const key = (c: string): string => c.repeat(64)

test('results are kept under their job, as a bitmap of tiles; take hands one over for good', t => {
  const cache = new ResultCache({ maxBytes: 1000, maxAgeMs: 60_000, clock: clockAt() })
  cache.put(key('a'), 0, 'c0', Buffer.alloc(10))
  cache.put(key('a'), 9, 'c9', Buffer.alloc(10))
  cache.put(key('b'), 3, 'c3', Buffer.alloc(10))
  t.deepEqual([...cache.heldTiles(key('a'))!], [0b0000_0001, 0b0000_0010])
  t.is(cache.heldTiles(key('c')), undefined)
  t.is(cache.get(key('a'), 9)?.checksum, 'c9')
  t.is(cache.take(key('a'), 9)?.checksum, 'c9')
  t.is(cache.get(key('a'), 9), undefined)
  t.like(cache.stats, { tiles: 2, bytes: 20 })
})

test('bounded in bytes and in age: the oldest go first', t => {
  const clock = clockAt()
  const cache = new ResultCache({ maxBytes: 25, maxAgeMs: 1000, clock })
  for (let tile = 0; tile < 3; tile++) cache.put(key('a'), tile, `c${tile}`, Buffer.alloc(10))
  t.is(cache.get(key('a'), 0), undefined, 'over 25 bytes: the oldest went')
  t.like(cache.stats, { tiles: 2, bytes: 20, evicted: 1 })
  clock.set(500)
  cache.put(key('b'), 0, 'n', Buffer.alloc(5))
  clock.set(1001)
  t.deepEqual(cache.heldTiles(key('a')), undefined, 'past their age')
  t.truthy(cache.get(key('b'), 0))
  t.is(new ResultCache({ maxBytes: 0, maxAgeMs: 1000, clock }).heldTiles(key('a')), undefined)
})

test('a job in phases: each phase\'s tiles kept apart, a later phase\'s with its contexts\' digest', t => {
  const cache = new ResultCache({ maxBytes: 1000, maxAgeMs: 60_000, clock: clockAt() })
  cache.put(key('a'), 3, 's3', Buffer.alloc(4))
  cache.put(key('a'), 3, 't3', Buffer.alloc(4), { phase: 1, context: 'd'.repeat(32) })
  cache.put(key('a'), 8, 't8', Buffer.alloc(4), { phase: 2, context: 'e'.repeat(32) })
  t.deepEqual([...cache.heldPhases(key('a'))].map(([phase, bitmap]) => [phase, [...bitmap]]), [[0, [0b1000]], [1, [0b1000]], [2, [0, 1]]])
  t.is(cache.get(key('a'), 3)?.checksum, 's3')
  t.like(cache.get(key('a'), 3, 1), { checksum: 't3', context: 'd'.repeat(32) })
  t.is(cache.take(key('a'), 8, 2)?.context, 'e'.repeat(32))
  t.is(cache.heldTiles(key('a'), 2), undefined)
  t.deepEqual(cache.heldOutputs(10), [], 'tiles are not a batch\'s outputs')
})
