import test from 'ava'
import fc from 'fast-check'
import { LeaseTable } from '../../src/job/leases.ts'

test('claims hand out each tile once, in order, until none are left', t => {
  const table = new LeaseTable(3, 1000)
  t.deepEqual([table.claim('a', 0)?.tile, table.claim('b', 0)?.tile, table.claim('a', 0)?.tile], [0, 1, 2])
  t.is(table.claim('a', 0), undefined)
  t.is(table.pendingCount, 0)
  t.is(table.leasedCount, 3)
})

test('an expired lease returns its tile first; a late result from the first holder still counts once', t => {
  const table = new LeaseTable(2, 1000)
  const first = table.claim('a', 0)!
  t.deepEqual(table.expire(999), [])
  t.deepEqual(table.expire(1000).map(l => l.leaseId), [first.leaseId])
  const again = table.claim('b', 1000)!
  t.is(again.tile, first.tile, 'the returned tile goes out before fresh ones')
  t.is(table.stats.reclaimed, 1)
  t.is(table.complete(first.tile, first.leaseId, 'a', 0), 'accepted', 'late but valid')
  t.is(table.complete(again.tile, again.leaseId, 'b', 0), 'duplicate')
  t.is(table.completed, 1)
  t.is(table.stats.duplicates, 1)
})

test('only the holder may renew, release or deliver', t => {
  const table = new LeaseTable(1, 1000)
  const lease = table.claim('a', 0)!
  t.is(table.renew(lease.leaseId, 'b', 500), undefined)
  t.is(table.renew(lease.leaseId, 'a', 500)?.deadline, 1500)
  t.false(table.release(lease.leaseId, 'b'))
  t.is(table.complete(lease.tile, lease.leaseId, 'b', 0), 'unknown')
  t.is(table.complete(5, lease.leaseId, 'a', 0), 'unknown')
  t.is(table.check(lease.tile, 'made-up', 'a'), 'unknown')
  t.true(table.release(lease.leaseId, 'a'))
  t.is(table.pendingCount, 1)
})

test('a peer that goes away returns everything it holds at once', t => {
  const table = new LeaseTable(4, 60_000)
  table.claim('a', 0); table.claim('b', 0); table.claim('a', 0)
  t.is(table.releasePeer('a').length, 2)
  t.is(table.pendingCount, 3)
  t.is(table.nextDeadline(), 60_000)
})

test('a claim flood from one peer stops at its cap; others still get tiles', t => {
  const table = new LeaseTable(100, 1000, 5)
  for (let i = 0; i < 5; i++) t.truthy(table.claim('greedy', 0))
  t.is(table.claim('greedy', 0), undefined)
  t.truthy(table.claim('fair', 0))
})

// Any interleaving of claims, expiries, releases, departures and results ends
// with every tile done exactly once, if someone keeps working.
test('property: every tile completes exactly once under any schedule', t => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 40 }),
    fc.array(fc.record({ kind: fc.constantFrom('claim', 'expire', 'release', 'gone', 'deliver', 'deliverLate'), peer: fc.constantFrom('a', 'b', 'c'), pick: fc.nat(), dt: fc.integer({ min: 0, max: 700 }) }), { maxLength: 300 }),
    (tiles, ops) => {
      const table = new LeaseTable(tiles, 1000, 8)
      const held: Array<{ tile: number, leaseId: string, peer: string }> = []
      const everHeld: typeof held = []
      const doneBy = new Map<number, number>()
      let now = 0
      const deliver = (l: { tile: number, leaseId: string, peer: string }): void => {
        if (table.complete(l.tile, l.leaseId, l.peer, 0) === 'accepted') doneBy.set(l.tile, (doneBy.get(l.tile) ?? 0) + 1)
      }
      for (const op of ops) {
        now += op.dt
        if (op.kind === 'claim') { const l = table.claim(op.peer, now); if (l) { held.push(l); everHeld.push(l) } }
        if (op.kind === 'expire') table.expire(now)
        if (op.kind === 'release' && held.length > 0) { const l = held.splice(op.pick % held.length, 1)[0]!; table.release(l.leaseId, l.peer) }
        if (op.kind === 'gone') table.releasePeer(op.peer)
        if (op.kind === 'deliver' && held.length > 0) deliver(held.splice(op.pick % held.length, 1)[0]!)
        if (op.kind === 'deliverLate' && everHeld.length > 0) deliver(everHeld[op.pick % everHeld.length]!)
      }
      // Then one honest worker finishes the job.
      for (let guard = 0; !table.isComplete && guard < tiles * 4; guard++) {
        now += 1001
        table.expire(now)
        const l = table.claim('z', now)
        if (l) deliver(l)
      }
      return table.isComplete && doneBy.size === tiles && [...doneBy.values()].every(n => n === 1)
    },
  ), { numRuns: 300 })
  t.pass()
})
