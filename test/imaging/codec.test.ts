import test from 'ava'
import { readFile } from 'node:fs/promises'
import sharp from 'sharp'
import { decodeImage, encodeImage, formatFromPath } from '../../src/imaging/index.ts'
import { FORMATS, noiseImage } from '../helpers/images.ts'
import { fixture } from '../helpers/fixtures.ts'

test('png and tiff round-trip every pixel format exactly', async t => {
  for (const format of ['png', 'tiff'] as const) {
    for (const pixel of FORMATS) {
      if (format === 'tiff' && pixel.channels === 2) continue
      const image = noiseImage(17, 9, pixel, 11)
      const { image: back } = await decodeImage(await encodeImage(image, { format }))
      t.is(back.channels, image.channels, `${format} ${pixel.channels}ch ${pixel.depth}`)
      t.is(back.depth, image.depth, `${format} ${pixel.channels}ch ${pixel.depth}`)
      t.true(back.data.equals(image.data), `${format} ${pixel.channels}ch ${pixel.depth}`)
    }
  }
})

test('grey+alpha goes to tiff as RGBA, grey repeated, alpha exact', async t => {
  const image = noiseImage(5, 4, { channels: 2, depth: 8 }, 2)
  const { image: back } = await decodeImage(await encodeImage(image, { format: 'tiff' }))
  t.is(back.channels, 4)
  for (let p = 0; p < 20; p++) {
    t.deepEqual([...back.data.subarray(4 * p, 4 * p + 4)], [image.data[2 * p], image.data[2 * p], image.data[2 * p], image.data[2 * p + 1]])
  }
})

test('lossy formats write 8-bit; jpeg flattens alpha', async t => {
  const rgba16 = noiseImage(8, 8, { channels: 4, depth: 16 }, 1)
  for (const format of ['jpeg', 'webp', 'avif'] as const) {
    const meta = await sharp(await encodeImage(rgba16, { format, quality: 80 })).metadata()
    t.is(meta.depth, 'uchar', format)
    t.is(meta.hasAlpha, format !== 'jpeg', format)
  }
})

test('the output format comes from the extension', t => {
  t.is(formatFromPath('a/b.JPG'), 'jpeg')
  t.is(formatFromPath('x.tif'), 'tiff')
  t.is(formatFromPath('x.avif'), 'avif')
  t.is(formatFromPath('x.bmp'), undefined)
  t.is(formatFromPath('noext'), undefined)
})

test('decode applies orientation, converts CMYK, keeps 16-bit and alpha, takes a GIF\'s first frame', async t => {
  const landscape = await decodeImage(await readFile(fixture('Landscape_5.jpg')))
  t.deepEqual([landscape.image.width, landscape.image.height], [600, 450])
  t.true(landscape.notes.some(n => /orientation 5/.test(n)))
  const cmyk = await decodeImage(await readFile(fixture('Channel_digital_image_CMYK_color.jpg')))
  t.is(cmyk.image.channels, 3)
  t.true(cmyk.notes.some(n => /CMYK/.test(n)))
  const flag = await decodeImage(await readFile(fixture('Flag_of_the_Netherlands-16bit.png')))
  t.is(flag.image.depth, 16)
  const pattern = await decodeImage(await readFile(fixture('test-pattern.png')))
  t.is(pattern.image.channels, 4)
  const gif = await decodeImage(await readFile(fixture('animated-loop-3.gif')))
  t.deepEqual([gif.image.width, gif.image.height], [370, 285])
  t.true(gif.notes.some(n => /10 frames: only the first/.test(n)))
  const bilevel = await decodeImage(await readFile(fixture('G31D.TIF')))
  t.is(bilevel.image.channels, 1)
})

test.serial('bad input gets a named, one-line error', async t => {
  const cases: Array<[Buffer, string, RegExp]> = [
    [Buffer.alloc(0), 'InvalidImageError', /empty/],
    [Buffer.from('just some text, not an image'), 'InvalidImageError', /not a supported image/],
    [await readFile(fixture('corrupt-header.jpg')), 'InvalidImageError', /header is corrupt/],
    [await readFile(fixture('truncated.jpg')), 'InvalidImageError', /truncated/],
    [Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'), 'InvalidImageError', /svg input is not supported/],
  ]
  for (const [bytes, name, pattern] of cases) {
    const err = await t.throwsAsync(decodeImage(bytes))
    t.is(err?.name, name)
    t.regex(err!.message, pattern)
    t.false(err!.message.includes('\n'))
  }
})

test.serial('a decompression bomb is refused from its header, before any decoding', async t => {
  const bytes = await readFile(fixture('65536-uint32-limit.png'))
  const before = process.memoryUsage().rss
  const err = await t.throwsAsync(decodeImage(bytes))
  t.is(err?.name, 'LimitExceededError')
  t.regex(err!.message, /65536x65536 = 4295.0 MP, over the limit of 300.0 MP/)
  // Decoding 4.3 GP would take gigabytes; refusing takes next to nothing.
  t.true(process.memoryUsage().rss - before < 200 * 1024 * 1024)
  const small = await t.throwsAsync(decodeImage(await readFile(fixture('flowers.jpeg')), { maxPixels: 1000 }))
  t.is(small?.name, 'LimitExceededError')
})
