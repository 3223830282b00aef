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
  const table = new LeaseTable(100, 1000, { maxLeasesPerPeer: 5 })
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
      const table = new LeaseTable(tiles, 1000, { maxLeasesPerPeer: 8 })
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

const policy = { afterMedians: 3, maxShare: 0.5, minSamples: 2 }

test('speculation: a copy only with the pool empty, tile times known, and the holder far past the median; first result wins', t => {
  const table = new LeaseTable(4, 60_000)
  const slow = table.claim('slow', 0)!
  const [a, b] = [table.claim('fast', 0)!, table.claim('fast', 0)!]
  t.is(table.speculate('idle', 10, policy), undefined, 'the pool is not empty')
  const c = table.claim('fast', 0)!
  t.is(table.speculate('idle', 10, policy), undefined, 'no tile times known yet')
  for (const l of [a, b, c]) table.complete(l.tile, l.leaseId, 'fast', 100)
  t.is(table.speculate('idle', 250, policy), undefined, 'the holder is within three medians (100 ms)')
  t.is(table.speculate('slow', 400, policy), undefined, 'never to the holder itself')
  const copy = table.speculate('idle', 400, policy)!
  t.like(copy, { tile: slow.tile, kind: 'copy', peer: 'idle' })
  t.is(table.speculate('other', 400, policy), undefined, 'one copy per tile')
  t.is(table.complete(copy.tile, copy.leaseId, 'idle', 410), 'accepted')
  t.is(table.complete(slow.tile, slow.leaseId, 'slow', 500), 'duplicate', 'the straggler loses')
  t.is(table.renew(slow.leaseId, 'slow', 500), undefined, 'and its lease is gone')
  t.like(table.stats, { speculated: 1, speculativeWins: 1 })
  t.true(table.isComplete)
})

test('speculation stays within its share of the tiles', t => {
  const table = new LeaseTable(10, 60_000)
  const held = Array.from({ length: 10 }, (_, i) => table.claim(`p${i}`, 0)!)
  for (const l of held.slice(0, 2)) table.complete(l.tile, l.leaseId, l.peer, 10)
  const copies = Array.from({ length: 8 }, () => table.speculate('idle', 1000, { ...policy, maxShare: 0.2 })).filter(l => l !== undefined)
  t.is(copies.length, 2)
})

test('reserved tiles: held for their holder to hand over, not handed out, and counted as recovered', t => {
  const table = new LeaseTable(3, 1000)
  const reserved = table.reserve(1, 'holder', 0, 10_000)!
  t.is(reserved.deadline, 10_000)
  t.is(table.reserve(1, 'other', 0, 10_000), undefined, 'a tile is reserved once')
  t.deepEqual([table.claim('w', 0)?.tile, table.claim('w', 0)?.tile, table.claim('w', 0)], [0, 2, undefined])
  t.is(table.leaseOf(1, 'holder', 'offer')?.leaseId, reserved.leaseId)
  t.is(table.complete(1, reserved.leaseId, 'holder', 5), 'accepted')
  t.is(table.stats.recovered, 1)
  t.is(table.stats.granted, 2, 'reservations are not grants of work')
})

test('a reservation that lapses frees its tile for computing', t => {
  const table = new LeaseTable(1, 1000)
  table.reserve(0, 'holder', 0, 5000)
  t.is(table.claim('w', 0), undefined)
  t.is(table.expire(5000).length, 1)
  t.is(table.claim('w', 5000)?.tile, 0)
})
