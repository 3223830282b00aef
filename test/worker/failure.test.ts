import test from 'ava'
import { InvalidImageError, LimitExceededError, NetworkError } from '../../src/common/errors.ts'
import { isComputeFailure, isOutOfMemory, isThisPeersTrouble } from '../../src/worker/failure.ts'

test('memory that ran out: libvips says so in its message, JavaScript throws a RangeError', t => {
  t.true(isOutOfMemory(new Error('vips_malloc: out of memory --- size == 123MB')))
  t.true(isOutOfMemory(new Error('Array buffer allocation failed')))
  t.true(isOutOfMemory(new RangeError('Invalid typed array length')))
  t.false(isOutOfMemory(new Error('Input buffer contains unsupported image format')))
})

test('a unit another peer may do: past this peer\'s limits, or its memory', t => {
  t.true(isThisPeersTrouble(new LimitExceededError('over --max-pixels')))
  t.true(isThisPeersTrouble(new Error('out of memory')))
  t.false(isThisPeersTrouble(new Error('VipsJpeg: Premature end of input file')))
})

test('a failure told to the coordinator: computing\'s own, not ours (network, limits, memory)', t => {
  t.true(isComputeFailure(new Error('VipsJpeg: Premature end of input file')))
  t.false(isComputeFailure(new NetworkError('coordinator closed the session')))
  t.false(isComputeFailure(new InvalidImageError('bad image')))
  t.false(isComputeFailure(new Error('out of memory')))
})
