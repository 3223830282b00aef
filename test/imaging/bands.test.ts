import test from 'ava'
import fc from 'fast-check'
import { readFile } from 'node:fs/promises'
import { BandedImage, decodeImage, decodeImageBands, extract, freeBuffer } from '../../src/imaging/index.ts'
import { fixture, fixtureNames } from '../helpers/fixtures.ts'
import { noiseImage } from '../../sim/model.ts'

test('property: any rectangle read from bands equals the same rectangle of the whole image', t => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 70 }), fc.constantFrom(1, 2, 3, 4), fc.constantFrom(8, 16),
    fc.nat(), fc.nat(), fc.nat(), fc.nat(),
    (width, height, bandRows, channels, depth, a, b, c, d) => {
      const format = { channels: channels as 1 | 2 | 3 | 4, depth: depth as 8 | 16 }
      const whole = noiseImage(width, height, format, a + 1)
      const reference = { ...whole, data: Buffer.from(whole.data) }
      const banded = BandedImage.from(whole, bandRows)
      const x = a % width
      const y = b % height
      const rect = { x, y, width: 1 + (c % (width - x)), height: 1 + (d % (height - y)) }
      return banded.extract(rect).data.equals(extract(reference, rect).data)
    },
  ), { numRuns: 300 })
  t.pass()
})

test('a band is freed when dropped, and reading it afterwards is a loud bug', t => {
  const image = noiseImage(300, 100, { channels: 3, depth: 8 }, 1)
  const banded = BandedImage.from(image, 40)
  // The image was taken: its buffer is freed, not copied and kept.
  t.is(image.data.length, 0)
  t.is(banded.bandCount, 3)
  t.deepEqual(banded.bandsOf(35, 10), [0, 1])
  t.is(banded.heldBytes, 300 * 100 * 3)
  banded.drop(0)
  t.is(banded.heldBytes, 300 * 60 * 3)
  t.notThrows(() => banded.extract({ x: 0, y: 40, width: 300, height: 60 }))
  t.throws(() => banded.extract({ x: 0, y: 39, width: 10, height: 2 }), { message: /row 39 was read after its band was dropped/ })
  banded.dropAll()
  t.is(banded.heldBytes, 0)
})

test('release frees a buffer that owns its memory, and nothing shared', t => {
  const owned = Buffer.alloc(1 << 20)
  freeBuffer(owned)
  t.is(owned.length, 0)

  const whole = Buffer.alloc(1 << 20)
  const part = whole.subarray(0, 1 << 19)
  freeBuffer(part)
  t.is(whole.length, 1 << 20, 'a view on part of a buffer is not freed')

  const kept = Buffer.alloc(1 << 20)
  const alias = Buffer.from(kept.buffer, 0, kept.length)
  freeBuffer(alias, [kept])
  t.is(kept.length, 1 << 20, 'memory shared with a kept buffer is not freed')

  const small = Buffer.from('pooled')
  freeBuffer(small)
  t.is(small.toString(), 'pooled', 'small buffers (Node\'s pool) are left to the collector')

  t.notThrows(() => { freeBuffer(owned); freeBuffer(undefined) })
})

test('decoding into bands, in halves where the format streams, gives the pixels a whole decode gives', async t => {
  let halved = 0
  for (const name of fixtureNames()) {
    const bytes = await readFile(fixture(name))
    let whole
    try {
      whole = await decodeImage(bytes)
    } catch {
      continue // broken and hostile fixtures: decodeImage's tests cover their errors
    }
    for (const bandRows of [1, 7, 256]) {
      const { bands, notes, format } = await decodeImageBands(bytes, { bandRows, halvesMinBytes: 0 })
      if ((format === 'jpeg' || format === 'png') && bands.height > bandRows) halved++
      t.deepEqual(notes, whole.notes)
      t.deepEqual([bands.width, bands.height, bands.format], [whole.image.width, whole.image.height, { channels: whole.image.channels, depth: whole.image.depth }], name)
      t.true(bands.extract({ x: 0, y: 0, width: bands.width, height: bands.height }).data.equals(whole.image.data), `${name}, bands of ${bandRows}`)
    }
  }
  t.true(halved > 3, `${halved} decodes went in halves`)
})
