import test from 'ava'
import { readFile } from 'node:fs/promises'
import sharp from 'sharp'
import { OUTPUT_FORMATS } from '../../src/protocol/constants.ts'
import { decodeImage, encodeImage, parseOps, readImageHeader, resolvePipeline, runPipeline, wholeImagePipeline } from '../../src/imaging/index.ts'
import { noiseImage } from '../../sim/model.ts'
import { fixture, fixtureNames } from '../helpers/fixtures.ts'

const OPS = ['blur:sigma=0.6', 'blur:sigma=3', 'median:size=7', 'sharpen:sigma=2:flat=0.5:jagged=3']

async function plainInputs (): Promise<Array<[string, Buffer]>> {
  const inputs: Array<[string, Buffer]> = []
  for (const name of fixtureNames()) {
    const bytes = await readFile(fixture(name))
    const header = await readImageHeader(bytes, { strip: true }).catch(() => undefined)
    if (header?.plain === true && await decodeImage(bytes, { strip: true }).then(() => true, () => false)) inputs.push([name, bytes])
  }
  const rgb = noiseImage(157, 91, { channels: 3, depth: 8 }, 11)
  const grey = noiseImage(64, 33, { channels: 1, depth: 8 }, 12)
  inputs.push(['noise rgb png', await sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } }).png().toBuffer()])
  inputs.push(['noise rgb jpeg', await sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } }).jpeg().toBuffer()])
  inputs.push(['noise grey png', await sharp(grey.data, { raw: { width: grey.width, height: grey.height, channels: 1 } }).toColourspace('b-w').png().toBuffer()])
  return inputs
}

test('one pipeline for the whole image gives the bytes the tiled path gives, for every plain input, native op and format', async t => {
  t.timeout(300_000)
  const inputs = await plainInputs()
  t.true(inputs.length >= 5, `plain inputs: ${inputs.map(i => i[0]).join(', ')}`)
  for (const [name, bytes] of inputs) {
    // Stripped: a photo whose EXIF is kept is not plain (see the test below).
    const header = await readImageHeader(bytes, { strip: true })
    const { image } = await decodeImage(bytes, { strip: true })
    // Large photos: JPEG and the cheaper ops; AVIF (seconds a megapixel) for the small ones only: the suite's time.
    const pixels = header.width * header.height
    const large = pixels > 1e6
    const formats = large ? ['jpeg' as const] : OUTPUT_FORMATS.filter(f => f !== 'png' && (f !== 'avif' || pixels < 50_000))
    for (const ops of large ? ['blur:sigma=0.6', 'median:size=3'] : OPS) {
      const steps = resolvePipeline(parseOps(ops))
      const processed = await runPipeline(image, steps)
      for (const format of formats) {
        const whole = wholeImagePipeline(bytes, header, steps, { format, quality: 80, maxPixels: 1e9 })
        if (whole === undefined) { t.fail(`${name}: no whole-image pipeline for ${ops}`); continue }
        t.true((await whole).equals(await encodeImage(processed, { format, quality: 80 })), `${name} ${ops} ${format}`)
      }
    }
  }
})

test('no whole-image pipeline where it could differ: several steps, an op without a native form, or an image that is not plain', async t => {
  const rgb = noiseImage(40, 30, { channels: 3, depth: 8 }, 3)
  const png = await sharp(rgb.data, { raw: { width: 40, height: 30, channels: 3 } }).png().toBuffer()
  const header = await readImageHeader(png)
  const options = { format: 'jpeg' as const, maxPixels: 1e9 }
  t.not(wholeImagePipeline(png, header, resolvePipeline(parseOps('blur')), options), undefined)
  t.is(wholeImagePipeline(png, header, resolvePipeline(parseOps('blur,median')), options), undefined)
  t.is(wholeImagePipeline(png, header, resolvePipeline(parseOps('sobel')), options), undefined)
  t.is(wholeImagePipeline(png, header, resolvePipeline(parseOps('blur')), { ...options, format: 'png' }), undefined, 'a PNG from a file keeps its density')
  for (const name of ['Flag_of_the_Netherlands-16bit.png', 'alpha-premultiply-2048x1536-paper.png', 'Channel_digital_image_CMYK_color.jpg', 'animated-loop-3.gif']) {
    const bytes = await readFile(fixture(name))
    t.false((await readImageHeader(bytes, { maxPixels: 1e9 })).plain, name)
  }
})

test('a photo with EXIF (no profile, upright) goes in one pipeline too, its EXIF and density as the decoded path writes them; not to TIFF, whose writer says the density otherwise', async t => {
  const bytes = await readFile(fixture('flowers.jpeg'))
  const header = await readImageHeader(bytes)
  t.true(header.plain)
  t.truthy(header.metadata.exif)
  const steps = resolvePipeline(parseOps('blur:sigma=2'))
  const { image, metadata } = await decodeImage(bytes)
  const processed = await runPipeline(image, steps)
  for (const format of ['jpeg', 'webp'] as const) {
    const whole = await wholeImagePipeline(bytes, header, steps, { format, quality: 80, maxPixels: 1e9 })!
    t.true(whole.equals(await encodeImage(processed, { format, quality: 80, metadata })), format)
    t.truthy((await sharp(whole).metadata()).exif, `${format} keeps the EXIF`)
  }
  t.is(wholeImagePipeline(bytes, header, steps, { format: 'tiff', maxPixels: 1e9 }), undefined)
  t.false((await readImageHeader(bytes, { strip: true })).metadata.exif !== undefined, 'stripped, nothing is kept')
})

test('a file broken past its header fails in one pipeline as it fails when decoded for tiles', async t => {
  const bytes = await readFile(fixture('truncated.jpg'))
  const header = await readImageHeader(bytes)
  t.true(header.plain)
  const tiled = await t.throwsAsync(decodeImage(bytes))
  const whole = await t.throwsAsync(wholeImagePipeline(bytes, header, resolvePipeline(parseOps('blur')), { format: 'jpeg', maxPixels: 1e9 })!)
  // libvips keeps one error buffer: under concurrent work its detail may be gone, never the kind.
  for (const err of [whole, tiled]) {
    t.is(err?.name, 'InvalidImageError')
    t.regex(err?.message ?? '', /truncated/)
  }
})
