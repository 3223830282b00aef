import test from 'ava'
import { createRaw, parseOps, resolvePipeline, runPipeline, samples, type RawImage, withSamples } from '../../src/imaging/index.ts'
import { FORMATS, noiseImage } from '../helpers/images.ts'

const run = async (image: RawImage, ops: string): Promise<RawImage> => await runPipeline(image, resolvePipeline(parseOps(ops)))

function fromRows (rows: number[][], channels: 1 | 3 = 1, depth: 8 | 16 = 8): RawImage {
  const image = createRaw(rows[0]!.length / channels, rows.length, { channels, depth })
  const s = samples(image)
  s.set(rows.flat())
  return withSamples(image, s)
}

test('invert is max - value, in 8 and 16 bits, alpha untouched', async t => {
  for (const format of FORMATS) {
    const image = noiseImage(9, 7, format, 3)
    const out = samples(await run(image, 'invert'))
    const src = samples(image)
    const max = format.depth === 16 ? 65535 : 255
    for (let i = 0; i < src.length; i++) {
      const isAlpha = (format.channels === 2 || format.channels === 4) && i % format.channels === format.channels - 1
      t.is(out[i], isAlpha ? src[i] : max - src[i]!)
    }
  }
})

test('identity settings leave the image as it is', async t => {
  for (const format of FORMATS) {
    const image = noiseImage(13, 11, format, 5)
    for (const ops of ['brightness:1', 'contrast:1', 'gamma:1', 'convolve']) {
      t.true((await run(image, ops)).data.equals(image.data), `${ops} ${format.channels}ch ${format.depth}`)
    }
  }
})

test('sobel finds a vertical step edge and nothing in flat areas', async t => {
  const rows = Array.from({ length: 5 }, () => [0, 0, 0, 100, 100, 100])
  const out = samples(await run(fromRows(rows), 'sobel'))
  // Columns 2 and 3 straddle the step: |gx| = 100 * (1 + 2 + 1) = 400, clamped to 255.
  t.deepEqual([...out.slice(0, 6)], [0, 0, 255, 255, 0, 0])
  const scaled = samples(await run(fromRows(rows), 'sobel:scale=0.5'))
  t.deepEqual([...scaled.slice(6, 12)], [0, 0, 200, 200, 0, 0])
})

test('edge maps keep 16-bit depth', async t => {
  const rows = Array.from({ length: 3 }, () => [0, 0, 1000, 1000])
  const out = await run(fromRows(rows, 1, 16), 'sobel')
  t.is(out.depth, 16)
  t.deepEqual([...samples(out).slice(0, 4)], [0, 4000, 4000, 0])
})

test('erode and dilate take the window minimum and maximum', async t => {
  const rows = [[9, 9, 9, 9, 9], [9, 9, 9, 9, 9], [9, 9, 1, 9, 9], [9, 9, 9, 9, 9], [9, 9, 9, 9, 9]]
  const eroded = samples(await run(fromRows(rows), 'erode'))
  t.deepEqual([...eroded], rows.flatMap((row, y) => row.map((_, x) => Math.abs(x - 2) <= 1 && Math.abs(y - 2) <= 1 ? 1 : 9)))
  const dilated = samples(await run(fromRows(rows), 'dilate'))
  t.true([...dilated].every(v => v === 9))
})

test('threshold splits luminance at the level, grey out', async t => {
  const out = await run(fromRows([[0, 0, 0, 127, 127, 127, 128, 128, 128, 255, 255, 255]], 3), 'threshold:128')
  t.is(out.channels, 1)
  t.deepEqual([...samples(out)], [0, 0, 255, 255])
})

test('greyscale of a grey pixel keeps its value; colour ops work on 16-bit values', async t => {
  const out = await run(fromRows([[100, 100, 100, 200, 200, 200]], 3), 'greyscale')
  t.deepEqual([...samples(out)], [100, 200])
  const wide = await run(fromRows([[60000, 30000, 10000]], 3, 16), 'saturation:0')
  const [r, g, b] = samples(wide)
  // LCh round trips move a sample by a few units in 65535.
  t.true(Math.abs(r! - g!) <= 4 && Math.abs(g! - b!) <= 4 && r! > 255, `16-bit desaturated to ${r},${g},${b}`)
})

test('median removes an isolated speck', async t => {
  const rows = [[10, 10, 10], [10, 250, 10], [10, 10, 10]]
  t.true([...samples(await run(fromRows(rows), 'median:3'))].every(v => v === 10))
})
