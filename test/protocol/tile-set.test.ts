import test from 'ava'
import { hasTile, tileBitmap, tilesIn } from '../../src/protocol/tile-set.ts'

test('a tile set goes to a bitmap and back', t => {
  const tiles = [0, 7, 8, 13, 64]
  const bitmap = tileBitmap(tiles)
  t.is(bitmap.length, 9)
  t.deepEqual(tilesIn(bitmap), tiles)
  t.true(hasTile(bitmap, 13))
  t.false(hasTile(bitmap, 12))
  // Past its end a bitmap names no tile.
  t.false(hasTile(bitmap, 800))
})

test('a bitmap may be sized for a whole job, and be empty', t => {
  t.is(tileBitmap([3], 10).length, 10)
  t.deepEqual(tilesIn(tileBitmap([])), [])
})
