import test from 'ava'
import sharp, { type Sharp } from 'sharp'
import { readFile } from 'node:fs/promises'
import { createRaw, decodeImage, parseOps, resolvePipeline, runPipeline, runTiled, samples, withSamples, type RawImage } from '../../src/imaging/index.ts'
import { firstDifference, noiseImage, sameImage } from '../helpers/images.ts'
import { bandIndex } from '../../src/imaging/operations/canny-hysteresis.ts'
import { fixture } from '../helpers/fixtures.ts'

const run = async (image: RawImage, ops: string): Promise<RawImage> => await runPipeline(image, resolvePipeline(parseOps(ops)))
const tiled = async (image: RawImage, ops: string, tileSize: number): Promise<RawImage> => await runTiled(image, resolvePipeline(parseOps(ops)), tileSize)

function grey (width: number, height: number, value: (x: number, y: number) => number): RawImage {
  const image = createRaw(width, height, { channels: 1, depth: 8 })
  const s = samples(image)
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) s[y * width + x] = value(x, y)
  return withSamples(image, s)
}

const at = (image: RawImage, x: number, y: number): number => samples(image)[y * image.width + x]!

test('canny: hysteresis follows a weak edge across many tiles to the strong part that makes it an edge', async t => {
  // Two vertical steps, 240 rows long. The left one is weak (Sobel 4 x 30 = 120, between 100 and 200)
  // except its bottom 8 rows (4 x 60 = 240, strong); the right one is weak all along.
  const image = grey(64, 240, (x, y) => {
    if (x < 20) return 0
    if (x < 40) return y >= 232 ? 60 : 30
    return x < 50 ? 30 : 60
  })
  const whole = await run(image, 'canny:low=100:high=200')
  t.is(at(whole, 19, 0), 255, 'the top of the left edge, 29 tiles of 8 from its strong part, is an edge')
  t.is(at(whole, 19, 120), 255)
  t.is(at(whole, 49, 120), 0, 'a weak edge with nothing strong on it is not')
  for (const tileSize of [8, 16, 37, 240]) {
    const out = await tiled(image, 'canny:low=100:high=200', tileSize)
    t.true(sameImage(whole, out), `tile ${tileSize}: ${firstDifference(whole, out)}`)
  }
  // Only the strong part is left if hysteresis stays inside a tile: what the tiles must not do.
  const local = await run(grey(64, 8, () => 0), 'canny')
  t.is(at(local, 19, 0), 0)
})

test('canny: tiled == whole on a photo, with steps around it that reach past the tiles', async t => {
  const { image } = await decodeImage(await readFile(fixture('flowers.jpeg')))
  for (const ops of ['canny', 'blur:1.5,canny:50:150,dilate:2', 'canny:sigma=2:gradient=l2,box_blur:5,threshold:auto']) {
    const whole = await run(image, ops)
    const out = await tiled(image, ops, 96)
    t.true(sameImage(whole, out), `${ops}: ${firstDifference(whole, out)}`)
  }
})

test('equalize: cv::equalizeHist\'s table, worked by hand', async t => {
  // Values 0,0,1,1,2,3: the first value present maps to 0; the rest by cumulative count x 255 / (6 - 2), rounded half to even.
  const image = grey(6, 1, x => [0, 0, 1, 1, 2, 3][x]!)
  const out = await run(image, 'equalize')
  t.deepEqual([...samples(out)], [0, 0, 128, 128, 191, 255])
  const flat = await run(grey(5, 5, () => 77), 'equalize')
  t.true([...samples(flat)].every(v => v === 77), 'one value: left as it is')
})

test('equalize of a colour image: its luma is the equalised luma (to a level), colour differences kept where they fit', async t => {
  const { image } = await decodeImage(await readFile(fixture('flowers.jpeg')))
  const out = await run(image, 'equalize')
  const luma = (s: Uint8Array | Uint16Array, i: number): number => (s[i]! * 9798 + s[i + 1]! * 19235 + s[i + 2]! * 3735 + 16384) >>> 15
  const a = samples(image)
  const b = samples(out)
  const grey = createRaw(image.width, image.height, { channels: 1, depth: 8 })
  const g = samples(grey)
  for (let p = 0; p < g.length; p++) g[p] = luma(a, 3 * p)
  const wanted = samples(await run(withSamples(grey, g), 'equalize'))
  let worst = 0
  let kept = 0
  for (let p = 0; p < g.length; p++) {
    worst = Math.max(worst, Math.abs(luma(b, 3 * p) - wanted[p]!))
    const d = [0, 1, 2].map(k => b[3 * p + k]! - a[3 * p + k]!)
    if (d.every(v => v === d[0])) kept++
  }
  t.true(worst <= 1, `luma off by ${worst}`)
  t.true(kept / g.length > 0.5, `${kept} of ${g.length} pixels moved alike (the others desaturated to fit)`)
  const each = await run(image, 'equalize:channels=each')
  t.false(sameImage(each, out))
})

test('threshold:auto is Otsu\'s level: two populations split between them', async t => {
  const image = grey(20, 10, x => x < 7 ? 10 + (x % 3) : 200 - (x % 4))
  const out = await run(image, 'threshold:auto')
  const s = samples(out)
  for (let x = 0; x < 20; x++) t.is(s[x], x < 7 ? 0 : 255, `column ${x}`)
})

test('normalise stretches the percentiles to the full range', async t => {
  const image = grey(101, 1, x => 50 + x)
  const out = samples(await run(image, 'normalise:lower=0:upper=100'))
  t.is(out[0], 0)
  t.is(out[100], 255)
  t.is(out[50], 128)
  const clipped = samples(await run(image, 'normalise:lower=10:upper=90'))
  t.is(clipped[0], 0)
  t.is(clipped[5], 0, 'below the lower percentile: black')
  t.is(clipped[100], 255)
})

test('rotate, flip and flop move pixels as sharp\'s own do', async t => {
  const image = noiseImage(37, 23, { channels: 3, depth: 8 }, 11)
  const raw = { raw: { width: image.width, height: image.height, channels: 3 as const } }
  for (const [ops, build] of [
    ['rotate:90', (s: Sharp) => s.rotate(90)],
    ['rotate:180', (s: Sharp) => s.rotate(180)],
    ['rotate:270', (s: Sharp) => s.rotate(270)],
    ['flip', (s: Sharp) => s.flip()],
    ['flop', (s: Sharp) => s.flop()],
  ] as const) {
    const ours = await run(image, ops)
    const { data, info } = await build(sharp(image.data, raw)).raw().toBuffer({ resolveWithObject: true })
    t.is(ours.width, info.width, ops)
    t.true(ours.data.equals(data), ops)
  }
  const cropped = await run(image, 'crop:3:4:10:5')
  t.true(cropped.data.equals(await sharp(image.data, raw).extract({ left: 3, top: 4, width: 10, height: 5 }).raw().toBuffer()))
  const err = await t.throwsAsync(run(image, 'crop:30:0:10:5'))
  t.regex(err!.message, /crop must lie inside the image of 37x23, got left=30, top=0, width=10, height=5/)
})

// A JPEG shrunk by sharp's own resize is decoded at 1/2 to 1/8 scale first (libjpeg's DCT scaling);
// ours resizes the fully decoded pixels, as every worker has them.
test('resize gives sharp\'s own resize of the file to the same size: the same pixels, but for a shrunk JPEG', async t => {
  for (const [name, exact] of [['test-pattern.png', true], ['flowers.jpeg', false]] as const) {
    const bytes = await readFile(fixture(name))
    const { image } = await decodeImage(bytes)
    const own: Record<string, (s: Sharp, w: number, h: number) => Sharp> = {
      // One side: the other is rounded from the aspect ratio, and both are asked of sharp.
      'resize:width=300': (s, w, h) => s.resize({ width: w, height: h, fit: 'fill' }),
      'resize:height=301': (s, w, h) => s.resize({ width: w, height: h, fit: 'fill' }),
      'resize:scale=1.7:kernel=cubic': (s, w, h) => s.resize({ width: w, height: h, fit: 'fill', kernel: 'cubic' }),
      'resize:width=211:height=97:kernel=nearest': s => s.resize({ width: 211, height: 97, fit: 'fill', kernel: 'nearest' }),
    }
    for (const [ops, build] of Object.entries(own)) {
      const ours = await run(image, ops)
      const { data, info } = await build(sharp(bytes), ours.width, ours.height).raw().toBuffer({ resolveWithObject: true })
      t.is(info.width, ours.width, `${name} ${ops}`)
      t.is(info.height, ours.height, `${name} ${ops}`)
      t.is(info.channels, ours.channels, `${name} ${ops}`)
      let worst = 0
      for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(data[i]! - ours.data[i]!))
      // A shrunk JPEG is sharp's reduced-scale decode against our full one: said, not held to a number.
      if (exact || ours.width > image.width) t.is(worst, 0, `${name} ${ops}`)
      t.log(`${name} ${ops}: ${ours.width}x${ours.height}, largest difference from sharp's own ${worst}`)
    }
  }
})

test('canny: a band position for every pixel within the band, row by row, and none deeper', t => {
  for (const [w, h, band] of [[10, 7, 1], [10, 7, 3], [10, 7, 5], [4, 9, 2], [1, 1, 1], [9, 3, 2], [12, 12, 6]] as const) {
    let next = 0
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const inBand = Math.min(x, y, w - 1 - x, h - 1 - y) < band
        t.is(bandIndex(x, y, w, h, band), inBand ? next++ : -1, `${w}x${h} band ${band} at (${x}, ${y})`)
      }
    }
  }
})

test('canny on 16-bit input finds the edges it finds at 8 bits, L1 and L2 alike', async t => {
  // A step of 60 is strong (Sobel 240 > 200); one of 40 is weak alone (160), and no edge.
  for (const rise of [60, 40]) {
    const step8 = grey(40, 30, x => x < 20 ? 0 : rise)
    const step16 = createRaw(40, 30, { channels: 1, depth: 16 })
    const s16 = samples(step16)
    samples(step8).forEach((v, i) => { s16[i] = v * 257 })
    for (const ops of ['canny:100:200', 'canny:100:200:gradient=l2']) {
      const a = samples(await run(step8, ops))
      const b = samples(await run(withSamples(step16, s16), ops))
      const edges = [...a].filter(v => v === 255).length
      t.is(edges > 0, rise === 60, `${ops}, a step of ${rise}`)
      t.is([...b].filter(v => v === 65535).length, edges, `${ops}, a step of ${rise}`)
    }
  }
})

test('resize to one side: the other is rounded from the aspect ratio, whatever sharp would round it to', async t => {
  // 1080 x 248 / 1920 = 139.5: sharp's own resize({ width: 248 }) makes 139 rows; the plan says 140, and 140 it is.
  const out = await run(noiseImage(1920, 1080, { channels: 3, depth: 8 }, 2), 'resize:width=248')
  t.deepEqual([out.width, out.height], [248, 140])
  // Enlarging too: 1 x 93 / 2 = 46.5, which sharp's own makes 46.
  const wide = await run(noiseImage(2, 1, { channels: 1, depth: 8 }, 2), 'resize:width=93')
  t.deepEqual([wide.width, wide.height], [93, 47])
})
