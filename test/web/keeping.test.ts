import test from 'ava'
import { toDrop, type Kept } from '../../src/web/keeping.ts'

const HOUR = 60 * 60_000
const MB = 1024 * 1024
const job = (id: string, client: string, endedAt: number, bytes = 1000): Kept => ({ id, client, endedAt, bytes })

test('a flood of small jobs from one address evicts none of another\'s results: they stay their hour', t => {
  const theirs = [job('a', '10.0.0.1', 0), job('b', '10.0.0.1', 1)]
  const flood = Array.from({ length: 200 }, (_, i) => job(`f${i}`, '10.0.0.9', 100 + i))
  const drop = toDrop([...theirs, ...flood], 1000, { resultsBytes: 1024 * MB })
  t.false(drop.has('a'))
  t.false(drop.has('b'))
  // The flooder keeps its own newest 64: its oldest go.
  t.is(drop.size, 200 - 64)
  t.true(drop.has('f0'))
  t.false(drop.has('f199'))
  // An hour after they ended, they go (the injected clock says when).
  t.false(toDrop(theirs, HOUR, { resultsBytes: 1024 * MB }).has('a'))
  t.deepEqual([...toDrop(theirs, HOUR + 2, { resultsBytes: 1024 * MB })].sort(), ['a', 'b'])
})

test('past the disk budget the oldest go first, whoever made them, until the rest fit', t => {
  const jobs = [job('old', 'x', 0, 40 * MB), job('mid', 'y', 10, 40 * MB), job('new', 'z', 20, 40 * MB)]
  t.is(toDrop(jobs, 30, { resultsBytes: 120 * MB }).size, 0)
  t.deepEqual([...toDrop(jobs, 30, { resultsBytes: 100 * MB })], ['old'])
  t.deepEqual([...toDrop(jobs, 30, { resultsBytes: 50 * MB })].sort(), ['mid', 'old'])
  // The newest stays, even alone over the budget.
  t.deepEqual([...toDrop(jobs, 30, { resultsBytes: 10 * MB })].sort(), ['mid', 'old'])
})

test('one address holds at most half the budget: its own oldest go, not others\'', t => {
  const jobs = [job('other', 'y', 0, 10 * MB), job('m1', 'x', 1, 30 * MB), job('m2', 'x', 2, 30 * MB), job('m3', 'x', 3, 30 * MB)]
  // Budget 100 MB: x may hold 50 MB, so its newest (30) stays and the two older go; y's older job stays.
  t.deepEqual([...toDrop(jobs, 10, { resultsBytes: 100 * MB })].sort(), ['m1', 'm2'])
})
