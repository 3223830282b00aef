import test from 'ava'
import { admitTiledJob } from '../../src/worker/admission.ts'

const limits = { maxPixels: 1_000_000 }

test('a job whose image and cut image are within the limit is admitted', t => {
  t.deepEqual(admitTiledJob({ image: { width: 1000, height: 1000 }, cut: { width: 500, height: 400 } }, limits), { admitted: true })
})

test('an image over the limit is refused, naming the size its tiles are cut from and the flag', t => {
  t.deepEqual(admitTiledJob({ image: { width: 1001, height: 1000 }, cut: { width: 200, height: 100 } }, limits), { admitted: false, reason: 'its image of 200x100 is over this peer\'s --max-pixels' })
})

test('a prelude that grows the image past the limit is refused, though the image was within it', t => {
  const admission = admitTiledJob({ image: { width: 100, height: 100 }, cut: { width: 2000, height: 1000 } }, limits)
  t.false(admission.admitted)
})

test('the limit itself is within it', t => {
  t.true(admitTiledJob({ image: { width: 1000, height: 1000 }, cut: { width: 1000, height: 1000 } }, limits).admitted)
})
