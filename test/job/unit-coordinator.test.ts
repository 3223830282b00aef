import test from 'ava'
import { FailurePolicy } from '../../src/job/failure-policy.ts'
import { LeaseTable } from '../../src/job/leases.ts'
import { UnitCoordinator } from '../../src/job/unit-coordinator.ts'
import { manualClock } from '../helpers/clock.ts'

test('the failure policy: this peer\'s own worker failing fails the unit; others must be two (or one twice, where asked)', t => {
  const job = new FailurePolicy({ self: 'me' })
  t.false(job.failed('a'))
  t.false(job.failed('a'), 'the same peer again is still one peer')
  job.forgive('a')
  t.false(job.failed('b'))
  t.true(job.failed('c'))
  t.is(job.peers, 2)
  t.true(new FailurePolicy({ self: 'me' }).failed('me'))
  const image = new FailurePolicy({ self: 'me', twiceFails: true })
  t.false(image.failed('a'))
  t.true(image.failed('a'))
})

test('a resumed job holds its units until every holder is heard from, or its window passes', async t => {
  const clock = manualClock()
  const units = new UnitCoordinator(new LeaseTable(2, 1000), {}, { clock, parkMs: 10_000, collect: { holders: ['h1', 'h2'], windowMs: 3000 } })
  units.startCollectWindow()
  t.true(units.collecting)
  const early = units.claim('w')
  units.heardFrom('h1')
  t.true(units.collecting, 'one holder of two')
  units.heardFrom('h2')
  t.false(units.collecting)
  t.is((await early).kind, 'lease', 'the waiting claim is served once collection ends')

  const windowed = new UnitCoordinator(new LeaseTable(1, 1000), {}, { clock, parkMs: 10_000, collect: { holders: ['h1'], windowMs: 3000 } })
  windowed.startCollectWindow()
  const waiting = windowed.claim('w')
  clock.advance(3000)
  t.false(windowed.collecting, 'the window passed')
  t.is((await waiting).kind, 'lease')
})

test('a result under no lease of its peer is refused, a second is a duplicate; the end answers waiting claims once', async t => {
  const clock = manualClock()
  const units = new UnitCoordinator(new LeaseTable(1, 1000), {}, { clock, parkMs: 10_000 })
  const outcome = await units.claim('a')
  if (outcome.kind !== 'lease') throw new Error(outcome.kind)
  const { leaseId, tile } = outcome.lease
  t.like(units.checkLease(tile, leaseId, 'b', 'tile 0'), { status: 'rejected', reason: `no lease ${leaseId} on tile 0 for this peer` })
  t.is(units.checkLease(tile, leaseId, 'a', 'tile 0'), undefined, 'fresh: the caller checks and places it')
  units.leases.complete(tile, leaseId, 'a', clock.now())
  t.like(units.checkLease(tile, leaseId, 'a', 'tile 0'), { status: 'duplicate' })
  const parked = units.claim('b')
  t.true(units.end('cancelled'))
  t.false(units.end('done'), 'ended already')
  t.is(units.state, 'cancelled')
  t.is((await parked).kind, 'cancelled')
})
