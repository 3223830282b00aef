import test from 'ava'
import { InvalidParameterError } from '../../src/common/errors.ts'
import { entitlements, jain, windowedFairness, type Backlog, type JobSpan, type WorkDone } from '../../sim/shared-fairness.ts'

test('jain: 1 when every share is equal, 1/n when one has everything, undefined for nothing', t => {
  t.is(jain([0.5, 0.5, 0.5, 0.5]), 1)
  t.is(jain([1, 0, 0, 0]), 0.25)
  t.is(jain([]), undefined)
  t.is(jain([0, 0]), undefined)
  t.true(Math.abs(jain([1, 2])! - 0.9) < 1e-12)
})

test('jain refuses negative or non-finite values', t => {
  t.throws(() => jain([1, -1]), { instanceOf: InvalidParameterError })
  t.throws(() => jain([1, Number.NaN]), { instanceOf: InvalidParameterError })
  t.throws(() => jain([Number.POSITIVE_INFINITY]), { instanceOf: InvalidParameterError })
})

test('entitlements: submitters first, then a submitter\'s jobs, weighted 4:2:1 by priority', t => {
  t.deepEqual(entitlements([{ job: 'a', submitter: 'x' }, { job: 'b', submitter: 'y' }]), new Map([['a', 0.5], ['b', 0.5]]))
  // One person's two jobs share that person's half.
  t.deepEqual(entitlements([{ job: 'a', submitter: 'x' }, { job: 'b', submitter: 'y' }, { job: 'c', submitter: 'y' }]), new Map([['a', 0.5], ['b', 0.25], ['c', 0.25]]))
  t.deepEqual(entitlements([{ job: 'a', submitter: 'x', priority: 'high' }, { job: 'b', submitter: 'y' }]), new Map([['a', 2 / 3], ['b', 1 / 3]]))
  t.deepEqual(entitlements([{ job: 'a', submitter: 'x', priority: 'high' }, { job: 'b', submitter: 'x', priority: 'low' }]), new Map([['a', 0.8], ['b', 0.2]]))
  t.deepEqual(entitlements([]), new Map())
})

const spans: JobSpan[] = [
  { job: 'big', submitter: 'x', startMs: 0, endMs: 400 },
  { job: 'small', submitter: 'y', startMs: 100, endMs: 300 },
]
/** A job computing without a break from `from` to `to`, a unit every 10 ms. */
const even = (job: string, from: number, to: number): WorkDone[] => Array.from({ length: (to - from) / 10 }, (_, i) => ({ job, atMs: from + (i + 1) * 10, ms: 10 }))

test('windowedFairness: equal compute to two running jobs is 1; everything to one of them is 1/2; windows with one job are left out', t => {
  const fair = windowedFairness(spans, [...even('big', 0, 400), ...even('small', 100, 300)], 100)
  t.is(fair.windows, 2)
  t.is(fair.index, 1)
  t.deepEqual(fair.shares.get('small'), { got: 0.5, entitled: 0.5, windows: 2 })
  const fifo = windowedFairness(spans, [...even('big', 0, 400), { job: 'small', atMs: 310, ms: 5 }], 100)
  t.is(fifo.windows, 2)
  t.is(fifo.index, 0.5)
  t.is(fifo.worst, 0.5)
  t.deepEqual(fifo.shares.get('big'), { got: 1, entitled: 0.5, windows: 2 })
})

test('windowedFairness: no two jobs together, no index; a window of no length is refused', t => {
  const apart = windowedFairness([{ job: 'a', submitter: 'x', startMs: 0, endMs: 100 }, { job: 'b', submitter: 'y', startMs: 100, endMs: 200 }], even('a', 0, 100), 50)
  t.is(apart.windows, 0)
  t.is(apart.index, undefined)
  t.is(windowedFairness([], [], 100).windows, 0)
  t.throws(() => windowedFairness(spans, [], 0), { instanceOf: InvalidParameterError })
})

test('windowedFairness: a unit counts in the windows its compute ran in, not all in the one it came in', t => {
  // small's units take 100 ms each and come in at 200 and 300: the window from 100 gets the first whole, not none.
  const fair = windowedFairness(spans, [...even('big', 0, 400), { job: 'small', atMs: 200, ms: 100 }, { job: 'small', atMs: 300, ms: 100 }], 100)
  t.is(fair.index, 1)
  const halves = windowedFairness(spans, [...even('big', 0, 400), { job: 'small', atMs: 250, ms: 100 }], 100)
  // Half of it in each window, beside big's 100 ms there.
  t.true(Math.abs(halves.shares.get('small')!.got - 1 / 3) < 1e-12)
})

test('windowedFairness with backlogs: only jobs with units waiting throughout a window are held to their share', t => {
  const sampled = (job: string, from: number, to: number, pending: (at: number) => number): Backlog[] => Array.from({ length: (to - from) / 20 }, (_, i) => ({ job, atMs: from + i * 20, pending: pending(from + i * 20) }))
  // small's every unit is claimed from 200 on: it has all it can use, and big may have the rest.
  const backlog = [...sampled('big', 0, 400, () => 50), ...sampled('small', 100, 300, at => at < 200 ? 3 : 0)]
  const work = [...even('big', 0, 400), ...even('small', 100, 200), { job: 'small', atMs: 290, ms: 10 }]
  t.is(windowedFairness(spans, work, 100).windows, 2)
  t.true(windowedFairness(spans, work, 100).index! < 0.9, 'counted as slighted without its backlog')
  const fair = windowedFairness(spans, work, 100, backlog)
  t.is(fair.windows, 1)
  t.is(fair.index, 1)
  // Starved while it had units waiting: unfair, backlog or not.
  const starved = windowedFairness(spans, [...even('big', 0, 400), { job: 'small', atMs: 310, ms: 10 }], 100, [...sampled('big', 0, 400, () => 50), ...sampled('small', 100, 300, () => 3)])
  t.is(starved.windows, 2)
  t.is(starved.index, 0.5)
  // A job never sampled in a window is not known to have had units waiting.
  t.is(windowedFairness(spans, work, 100, sampled('big', 0, 400, () => 50)).windows, 0)
})
