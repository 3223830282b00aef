import test from 'ava'
import { InvalidParameterError } from '../../src/common/errors.ts'
import { defaultMix, withPriorities } from '../../sim/shared-jobs.ts'

test('the default mix: three submitters, one big job from the start, four small ones and a batch after it', t => {
  const mix = defaultMix({ tiles: 600, images: 40 })
  t.deepEqual([...new Set(mix.map(j => j.submitter))], ['ana', 'ben', 'cleo'])
  t.deepEqual(mix.map(j => j.size), [{ kind: 'tiled', tiles: 600 }, ...Array(4).fill({ kind: 'tiled', tiles: 30 }), { kind: 'batch', images: 40 }])
  t.true(mix.slice(1).every(j => j.arriveAt > 0))
  // No batch with no images; small jobs of at least 16 tiles.
  t.deepEqual(defaultMix({ tiles: 100, images: 0 }).map(j => j.size), [{ kind: 'tiled', tiles: 100 }, ...Array(4).fill({ kind: 'tiled', tiles: 16 })])
})

test('withPriorities sets the named jobs\' priorities and leaves the rest unset', t => {
  const mix = withPriorities(defaultMix({ tiles: 600, images: 40 }), 'batch=high, small-1=low')
  t.deepEqual(mix.map(j => j.priority), [undefined, 'low', undefined, undefined, undefined, 'high'])
  t.deepEqual(withPriorities(mix, ''), mix)
})

test('withPriorities refuses a job not in the mix, a level that is not one, and an item without =', t => {
  const mix = defaultMix({ tiles: 600, images: 40 })
  t.throws(() => withPriorities(mix, 'nope=high'), { instanceOf: InvalidParameterError, message: /not a job of the mix/ })
  t.throws(() => withPriorities(mix, 'batch=urgent'), { instanceOf: InvalidParameterError, message: /high, normal, low/ })
  t.throws(() => withPriorities(mix, 'batch'), { instanceOf: InvalidParameterError, message: /job=priority/ })
  t.throws(() => withPriorities(mix, 'batch=high=low'), { instanceOf: InvalidParameterError })
})
