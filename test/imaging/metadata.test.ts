import test from 'ava'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import sharp from 'sharp'
import { decodeImage, encodeImage, parseOps, processFile, resolvePipeline, runPipeline, type OutputFormat } from '../../src/imaging/index.ts'
import { uprightExif } from '../../src/imaging/metadata.ts'
import { runLocal } from '../../src/client/local.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { fixture } from '../helpers/fixtures.ts'
import { noiseImage } from '../helpers/images.ts'
import { tempDir } from '../helpers/swarm.ts'

const PHOTO = fixture('exif-p3-xmp-orientation-6.jpg')
const FORMATS: OutputFormat[] = ['jpeg', 'png', 'webp', 'tiff', 'avif']

async function kept (bytes: Buffer): Promise<{ exif: boolean, icc: string | undefined, xmp: boolean, orientation: number | undefined, width: number | undefined }> {
  const m = await sharp(bytes).metadata()
  return {
    exif: m.exif?.toString('latin1').includes('Tileswarm test fixture') === true,
    icc: m.icc?.subarray(16, 20).toString('latin1'),
    xmp: m.xmp?.toString('utf8').includes('Tileswarm Fixture') === true,
    orientation: m.orientation,
    width: m.width,
  }
}

test('the fixture carries EXIF (orientation 6, copyright), a Display P3 profile and XMP', async t => {
  const m = await sharp(PHOTO).metadata()
  t.is(m.orientation, 6)
  t.like(await kept(await readFile(PHOTO)), { exif: true, icc: 'RGB ', xmp: true })
})

test('every format keeps what it can carry, upright, with orientation 1; TIFF has no EXIF', async t => {
  const { image, metadata } = await decodeImage(await readFile(PHOTO))
  t.is(image.width, 1280)
  const out = await runPipeline(image, resolvePipeline(parseOps('invert')))
  for (const format of FORMATS) {
    const k = await kept(await encodeImage(out, { format, metadata }))
    t.is(k.width, 1280, format)
    t.is(k.icc, 'RGB ', format)
    t.true(k.xmp, format)
    t.is(k.exif, format !== 'tiff', format)
    t.true(k.orientation === undefined || k.orientation === 1, `${format}: orientation ${k.orientation}`)
  }
})

test('with its profile kept, the pixels are the file\'s own, as vips processes them; stripped, converted to sRGB as sharp does', async t => {
  const bytes = await readFile(PHOTO)
  const own = await sharp(bytes, { autoOrient: true }).keepIccProfile().raw().toBuffer()
  const srgb = await sharp(bytes, { autoOrient: true }).raw().toBuffer()
  t.false(own.equals(srgb))
  t.true((await decodeImage(bytes)).image.data.equals(own))
  const stripped = await decodeImage(bytes, { strip: true })
  t.true(stripped.image.data.equals(srgb))
  t.deepEqual(stripped.metadata, {})
})

test('the kept metadata leaves the pixels as they are', async t => {
  const { image, metadata } = await decodeImage(await readFile(PHOTO))
  for (const format of ['png', 'tiff', 'jpeg'] as const) {
    const withIt = await sharp(await encodeImage(image, { format, metadata })).keepIccProfile().raw().toBuffer()
    const without = await sharp(await encodeImage(image, { format })).raw().toBuffer()
    t.true(withIt.equals(without), format)
  }
})

test('a grey output drops the colour profile (it would be invalid) and keeps EXIF and XMP', async t => {
  const { image, metadata } = await decodeImage(await readFile(PHOTO))
  const grey = await runPipeline(image, resolvePipeline(parseOps('greyscale')))
  t.is(grey.channels, 1)
  for (const format of ['jpeg', 'png'] as const) {
    t.like(await kept(await encodeImage(grey, { format, metadata })), { icc: undefined, exif: true, xmp: true }, format)
  }
})

test('--strip drops EXIF, ICC and XMP', async t => {
  const dir = await tempDir()
  for (const strip of [false, true]) {
    const out = join(dir, `out-${strip}.jpg`)
    await runLocal(requestFromFlags({ ops: 'blur:sigma=1', imagePath: PHOTO, out, ...(strip ? { strip } : {}) }))
    const k = await kept(await readFile(out))
    t.deepEqual([k.exif, k.icc !== undefined, k.xmp], [!strip, !strip, !strip])
  }
})

test('a whole file (a batch\'s image, a job not spread) gives --local\'s bytes, metadata and all', async t => {
  const dir = await tempDir()
  const file = await readFile(PHOTO)
  for (const [ops, strip] of [['invert', false], ['invert', true], ['blur:sigma=2', false]] as const) {
    const out = join(dir, `out-${ops}-${strip}.webp`)
    await runLocal(requestFromFlags({ ops, imagePath: PHOTO, out, ...(strip ? { strip } : {}) }))
    const whole = await processFile(file, resolvePipeline(parseOps(ops)), { format: 'webp', maxPixels: 1e8, maxRawBytes: Infinity, strip })
    t.true(whole.data.equals(await readFile(out)), `${ops} strip ${strip}`)
  }
})

test('EXIF orientation is set to 1 in either byte order, and an unreadable blob is dropped', t => {
  for (const le of [true, false]) {
    const b = Buffer.alloc(8 + 2 + 12 + 4)
    b.write(le ? 'II' : 'MM', 0, 'latin1')
    const w16 = (v: number, at: number): number => le ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at)
    w16(42, 2)
    if (le) b.writeUInt32LE(8, 4); else b.writeUInt32BE(8, 4)
    w16(1, 8)
    w16(0x0112, 10); w16(3, 12)
    if (le) b.writeUInt32LE(1, 14); else b.writeUInt32BE(1, 14)
    w16(8, 18)
    const prefixed = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), b])
    const up = uprightExif(prefixed)!
    t.is(le ? up.readUInt16LE(18) : up.readUInt16BE(18), 1)
    t.is(up.length, b.length)
  }
  t.is(uprightExif(Buffer.from('not exif at all')), undefined)
})

test('16-bit and alpha outputs carry the metadata with their pixels exact', async t => {
  const { metadata } = await decodeImage(await readFile(PHOTO))
  for (const [channels, depth] of [[3, 16], [4, 16], [4, 8], [2, 8], [1, 16]] as const) {
    const image = noiseImage(23, 17, { channels, depth }, channels * depth)
    for (const format of ['png', 'tiff'] as const) {
      if (format === 'tiff' && channels === 2) continue
      const plain = await decodeImage(await encodeImage(image, { format }), { strip: true })
      const bytes = await encodeImage(image, { format, metadata })
      const back = await decodeImage(bytes)
      t.true(back.image.data.equals(plain.image.data), `${channels}x${depth} ${format}`)
      t.like(await kept(bytes), { xmp: true, icc: channels <= 2 ? undefined : 'RGB ' }, `${channels}x${depth} ${format}`)
    }
  }
})

test('a PNG or WebP input\'s metadata is kept as a JPEG\'s is', async t => {
  const source = await readFile(PHOTO)
  for (const format of ['png', 'webp'] as const) {
    const input = await sharp(source).resize(160).keepMetadata()[format]().toBuffer()
    const { image, metadata } = await decodeImage(input)
    const k = await kept(await encodeImage(image, { format: 'jpeg', metadata }))
    t.like(k, { exif: true, icc: 'RGB ', xmp: true }, format)
  }
})
