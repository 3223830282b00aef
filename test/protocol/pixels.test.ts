import test from 'ava'
import { randomBytes } from 'node:crypto'
import { constants, zstdCompressSync } from 'node:zlib'
import { packPixels, unpackPixels } from '../../src/protocol/pixels.ts'

test('tile pixels travel compressed when that saves a tenth, raw otherwise; either way they come back exact', t => {
  const smooth = Buffer.alloc(512 * 512 * 3)
  for (let i = 0; i < smooth.length; i++) smooth[i] = (i >> 9) & 0xff
  const packed = packPixels(smooth)
  t.is(packed.encoding, 'zstd')
  t.true(packed.body.length < smooth.length / 10)
  t.true((unpackPixels(Buffer.from(packed.body), packed.encoding, smooth.length)).equals(smooth))
  const noise = randomBytes(64 * 1024)
  const raw = packPixels(noise)
  t.is(raw.encoding, undefined)
  t.is(raw.body, noise)
  t.is(unpackPixels(noise, undefined, noise.length), noise)
})

test('a compressed body that inflates past its tile, or to less, or not at all, is refused', t => {
  const bomb = zstdCompressSync(Buffer.alloc(64 * 1024 * 1024), { params: { [constants.ZSTD_c_compressionLevel]: 1 } })
  t.true(bomb.length < 64 * 1024)
  t.throws(() => unpackPixels(bomb, 'zstd', 1000), { name: 'ProtocolError', message: /do not decompress to 1000 bytes/ })
  const short = zstdCompressSync(Buffer.alloc(999))
  t.throws(() => unpackPixels(short, 'zstd', 1000), { name: 'ProtocolError', message: /decompress to 999 bytes, expected 1000/ })
  t.throws(() => unpackPixels(Buffer.from('not zstd at all'), 'zstd', 1000), { name: 'ProtocolError' })
})
