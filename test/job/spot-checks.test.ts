import test from 'ava'
import { LeaseTable } from '../../src/job/leases.ts'
import { SpotChecker, type CheckedJob, type Exclusion } from '../../src/job/spot-checks.ts'
import { TrustRecords } from '../../src/job/verify.ts'
import { manualClock } from '../helpers/clock.ts'

/** A job of `tiles` pixel tiles, as the checker sees it: what it takes, whom it credits and excludes. */
function fakeJob (tiles: number): CheckedJob & { taken: string[], excludedPeers: Array<[string, Exclusion]>, failures: string[] } {
  const taken: string[] = []
  const excludedPeers: Array<[string, Exclusion]> = []
  const failures: string[] = []
  return {
    isRunning: true,
    phase: 0,
    tileCount: tiles,
    summarising: false,
    leases: new LeaseTable(tiles + 10, 1000, { opened: tiles }),
    wake: () => {},
    take: (tile, body) => { taken.push(`${tile}:${Buffer.from(body).toString()}`) },
    credit: () => {},
    fail: reason => { failures.push(reason.message) },
    peerGone: () => {},
    restartFrom: () => {},
    settled: () => {},
    verified: () => {},
    excluded: (peer, why) => { excludedPeers.push([peer, why]) },
    taken,
    excludedPeers,
    failures,
  }
}

test('a checked result opens a computation of its tile for another peer; the two that agree settle it, and the one that disagreed is excluded', t => {
  const job = fakeJob(2)
  const records = new TrustRecords()
  const checker = new SpotChecker(job, { self: 'me', clock: manualClock(), verify: { level: 'all', records, random: () => 0 } })
  checker.first(0, 'a', Buffer.from('x'))
  t.deepEqual(job.taken, ['0:x'], 'pixels go into the output at once')
  t.false(checker.idle)
  t.is(checker.tileOf(2), 0, 'unit 2 checks tile 0')
  t.true(checker.refuses('a', 2), 'not to the peer that computed it')
  t.false(checker.refuses('b', 2))
  checker.extra(0, 'b', Buffer.from('y'))
  t.is(checker.figures.disagreements, 1)
  t.false(checker.idle, 'a third computation is asked for')
  checker.extra(0, 'c', Buffer.from('x'))
  t.true(checker.idle)
  t.like(checker.figures, { checked: 1, extra: 2, replaced: 0, excluded: { b: 1 } })
  t.deepEqual(job.excludedPeers, [['b', { tile: 0, redo: 0 }]])
  t.true(records.caught('b'))
  t.true(checker.excludes('b'))
  t.is(records.of('a').pending, 0, 'the check is no longer under way')
  checker.stop()
})

test('a check no other peer takes is given up on the clock: the one result is taken on its word', t => {
  const job = fakeJob(1)
  const clock = manualClock()
  const checker = new SpotChecker(job, { self: 'me', clock, verify: { level: 'all', records: new TrustRecords(), random: () => 0 } })
  checker.first(0, 'a', Buffer.from('x'))
  for (let i = 0; i < 9; i++) clock.advance(1000)
  t.false(checker.idle, 'not yet')
  clock.advance(1000)
  t.true(checker.idle)
  t.is(checker.figures.skipped, 1)
  t.deepEqual(job.failures, [])
  checker.stop()
})
