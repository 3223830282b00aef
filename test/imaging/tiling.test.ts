import test, { type ExecutionContext } from 'ava'
import fc from 'fast-check'
import { decodeImage, OPERATIONS, resolvePipeline, runPipeline, runTiled, type ParamSpec, type OpSpec, type RawImage } from '../../src/imaging/index.ts'
import { readFile } from 'node:fs/promises'
import { FORMATS, firstDifference, noiseImage, sameImage } from '../helpers/images.ts'
import { fixture, fixtureNames } from '../helpers/fixtures.ts'

/** A random valid value for a parameter, drawn from its own spec. */
function paramArbitrary (spec: ParamSpec): fc.Arbitrary<unknown> {
  switch (spec.kind) {
    case 'number':
      if (spec.odd === true) return fc.integer({ min: (spec.min - 1) / 2, max: (spec.max - 1) / 2 }).map(k => 2 * k + 1)
      if (spec.integer === true) return fc.integer({ min: spec.min, max: spec.max })
      // Keep sigmas modest so a case stays fast; the wide ones get a test of their own.
      return fc.double({ min: spec.min, max: Math.min(spec.max, spec.name === 'sigma' ? 6 : spec.max), noNaN: true })
    case 'kernel':
      return fc.integer({ min: 1, max: 3 }).chain(k => fc.array(fc.integer({ min: -8, max: 8 }), { minLength: (2 * k + 1) ** 2, maxLength: (2 * k + 1) ** 2 }))
    case 'colour':
      return fc.integer({ min: 0, max: 0xffffff }).map(v => `#${v.toString(16).padStart(6, '0')}`)
    case 'choice':
      return fc.constantFrom(...spec.choices)
  }
}

/** Geometry that fits any image and keeps it small: a resize by a modest scale, a crop of a corner or none. */
const GEOMETRY: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  resize: fc.record({ scale: fc.double({ min: 0.2, max: 2.5, noNaN: true }), kernel: fc.constantFrom('nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3') }),
  crop: fc.record({ left: fc.integer({ min: 0, max: 2 }), top: fc.integer({ min: 0, max: 2 }) }),
}

const stepArbitrary: fc.Arbitrary<OpSpec> = fc.constantFrom(...OPERATIONS).chain(op =>
  (GEOMETRY[op.name] ?? fc.tuple(...op.params.map(paramArbitrary)).map(values => Object.fromEntries(op.params.map((p, i) => [p.name, values[i]]))))
    .map(params => ({ op: op.name, params })))
  // Parameters that do not go together (canny's low over high) are refused up front: not a case.
  .filter(spec => { try { resolvePipeline([spec]); return true } catch { return false } })

async function tiledEqualsWhole (t: ExecutionContext, label: string, image: RawImage, specs: OpSpec[], tileSize: number): Promise<boolean> {
  const steps = resolvePipeline(specs)
  let whole: RawImage
  try {
    whole = await runPipeline(image, steps)
  } catch (err) {
    // A crop past a small image's edge: the tiled run must refuse it alike.
    if ((err as Error).name !== 'InvalidParameterError') throw err
    const tiledErr = await t.throwsAsync(runTiled(image, steps, tileSize))
    return tiledErr?.message === (err as Error).message
  }
  const tiled = await runTiled(image, steps, tileSize)
  if (!sameImage(whole, tiled)) {
    t.log(`${label}: ${JSON.stringify(specs)} on ${image.width}x${image.height} ${image.channels}ch ${image.depth}-bit, tile ${tileSize}: ${firstDifference(whole, tiled)}`)
    return false
  }
  return true
}

/** Variants of their own for operations whose extremes do not fit a small image (or each other). */
const VARIANTS: Record<string, Array<Record<string, unknown>>> = {
  resize: [{ scale: 0.5 }, { width: 100, kernel: 'nearest' }, { height: 13, kernel: 'cubic' }, { width: 7, height: 90 }, { width: 40, height: 40, fit: 'inside' }, { width: 50, height: 20, fit: 'cover', shrink_only: 'true' }, { width: 90, height: 90, fit: 'contain' }, { width: 30, height: 30, fit: 'outside' }, { scale: 3, kernel: 'linear' }],
  crop: [{}, { left: 60 }, { top: 40, height: 3 }, { left: 1, top: 1, width: 1, height: 1 }],
  rotate: [{ angle: '90' }, { angle: '180' }, { angle: '270' }],
  canny: [{}, { low: 0, high: 0 }, { low: 2000, high: 2000 }, { low: 20, high: 60, sigma: 1.4 }, { low: 30, high: 200, gradient: 'l2' }, { sigma: 10, low: 1, high: 5 }],
  threshold: [{}, { level: 'auto' }, { level: 0 }, { level: 255 }],
  normalise: [{}, { lower: 0, upper: 100 }, { lower: 49, upper: 51, channels: 'each' }],
}

// Every operation with default and extreme parameters, in every pixel format.
for (const op of OPERATIONS) {
  test(`tiled == whole: ${op.name} in every pixel format`, async t => {
    const variants: Array<Record<string, unknown>> = VARIANTS[op.name] ?? [{}]
    if (VARIANTS[op.name] === undefined) {
      for (const p of op.params) {
        if (p.kind === 'number') variants.push({ [p.name]: p.max }, { [p.name]: p.min })
        if (p.kind === 'choice') for (const c of p.choices) variants.push({ [p.name]: c })
      }
    }
    let ok = true
    for (const format of FORMATS) {
      const image = noiseImage(61, 47, format, 7)
      for (const params of variants) {
        ok = await tiledEqualsWhole(t, op.name, image, [{ op: op.name, params }], 16) && ok
      }
    }
    t.true(ok)
  })
}

test('tiled == whole: random pipelines, sizes, tile sizes and formats', async t => {
  await fc.assert(fc.asyncProperty(
    fc.record({
      width: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 200 })),
      height: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 200 })),
      tileSize: fc.integer({ min: 3, max: 128 }),
      format: fc.constantFrom(...FORMATS),
      seed: fc.integer({ min: 1, max: 1 << 30 }),
      steps: fc.array(stepArbitrary, { minLength: 1, maxLength: 3 }),
    }),
    async ({ width, height, tileSize, format, seed, steps }) =>
      await tiledEqualsWhole(t, 'random', noiseImage(width, height, format, seed), steps, tileSize),
  ), { numRuns: 300 })
  t.pass()
})

test('tiled == whole: long strips and images smaller than one tile', async t => {
  let ok = true
  for (const [w, h] of [[1, 1], [1, 1500], [1500, 1], [2, 777], [5, 3]] as const) {
    const image = noiseImage(w, h, { channels: 3, depth: 8 }, w * 31 + h)
    ok = await tiledEqualsWhole(t, 'strip', image, [{ op: 'blur', params: { sigma: 2 } }, { op: 'sobel' }, { op: 'median', params: { size: 5 } }], 64) && ok
  }
  t.true(ok)
})

test('tiled == whole: wide halos (blur sigma 10 and 30, sharpen sigma 10)', async t => {
  const image = noiseImage(300, 211, { channels: 3, depth: 8 }, 99)
  let ok = true
  for (const specs of [[{ op: 'blur', params: { sigma: 10 } }], [{ op: 'blur', params: { sigma: 30 } }], [{ op: 'sharpen', params: { sigma: 10 } }]]) {
    ok = await tiledEqualsWhole(t, 'wide', image, specs, 50) && ok
  }
  t.true(ok)
})

test('tiled == whole: images a few thousand pixels across', async t => {
  await fc.assert(fc.asyncProperty(
    fc.record({
      long: fc.integer({ min: 500, max: 3000 }),
      short: fc.integer({ min: 1, max: 200 }),
      portrait: fc.boolean(),
      tileSize: fc.integer({ min: 64, max: 700 }),
      format: fc.constantFrom(...FORMATS),
      seed: fc.integer({ min: 1, max: 1 << 30 }),
      steps: fc.array(stepArbitrary, { minLength: 1, maxLength: 2 }),
    }),
    async ({ long, short, portrait, tileSize, format, seed, steps }) =>
      await tiledEqualsWhole(t, 'large', noiseImage(portrait ? short : long, portrait ? long : short, format, seed), steps, tileSize),
  ), { numRuns: 20 })
  t.pass()
})

test('tiled == whole on every decodable fixture', async t => {
  let ok = true
  for (const name of fixtureNames()) {
    let image: RawImage
    try {
      image = (await decodeImage(await readFile(fixture(name)))).image
    } catch {
      continue // the broken and hostile fixtures have tests of their own
    }
    ok = await tiledEqualsWhole(t, name, image, [{ op: 'blur', params: { sigma: 2 } }, { op: 'sobel' }], 256) && ok
    ok = await tiledEqualsWhole(t, name, image, [{ op: 'median', params: { size: 5 } }, { op: 'sepia' }], 300) && ok
  }
  t.true(ok)
})
