import { InvalidParameterError } from '../../common/errors.ts'
import type { GlobalStep, GridInfo, Operation, Reducer, StepPlace } from './operation.ts'
import type { Params } from './params.ts'
import { allocRawUnsafe, bytesOf, maxSample, samples, u16Words, u32Words, withSamples, type Depth, type RawImage, type Rect } from '../pixels/raw.ts'
import { bt601, toGrey } from './luma.ts'
import { applyLut } from '../pixels/sharp-pass.ts'

/**
 * Operations driven by the whole image's histogram. Phase one: each tile
 * counts its core's samples; the coordinator sums the counts (exactly: they
 * are integers) and makes a lookup table. Phase two: each tile applies it.
 */

type Mode = 'luminance' | 'each'

const modeParam = { name: 'channels', kind: 'choice' as const, choices: ['luminance', 'each'], default: 'luminance', description: 'luminance: one table from the BT.601 luma, colour kept; each: one table per channel' }

/** Histograms a step keeps: one of the luma, or one per colour channel. */
function tables (mode: Mode, channels: number): number {
  return mode === 'each' ? channels : 1
}

/** Counts of each sample value in `valid`, one histogram per table, as u32 words. */
function histogram (image: RawImage, valid: Rect, mode: Mode): Uint32Array {
  const bins = maxSample(image.depth) + 1
  const n = tables(mode, image.channels)
  const counts = new Uint32Array(n * bins)
  const src = samples(image)
  const c = image.channels
  for (let y = valid.y; y < valid.y + valid.height; y++) {
    for (let x = valid.x; x < valid.x + valid.width; x++) {
      const i = (y * image.width + x) * c
      if (n === c) for (let k = 0; k < c; k++) counts[k * bins + src[i + k]!]!++
      else counts[c === 3 ? bt601(src[i]!, src[i + 1]!, src[i + 2]!) : src[i]!]!++
    }
  }
  return counts
}

/** Applies a table per channel (each) or to the luma, moving every colour sample by the luma's change (luminance). */
function applyTables (image: RawImage, lut: Uint16Array, mode: Mode): RawImage {
  const max = maxSample(image.depth)
  const bins = max + 1
  const c = image.channels
  const src = samples(image)
  const out = allocRawUnsafe(image.width, image.height, image)
  const dst = samples(out)
  if (tables(mode, c) === c) {
    for (let i = 0; i < src.length; i += c) for (let k = 0; k < c; k++) dst[i + k] = lut[k * bins + src[i + k]!]!
  } else {
    // Cb and Cr are differences from the luma: shifting each sample by the luma's change keeps them, as
    // equalising Y of YCbCr does. Where that would clip, the colour is desaturated toward the new luma
    // just enough to fit, so the luma still comes out as the table says (to rounding), not clipped.
    for (let i = 0; i < src.length; i += 3) {
      const y = bt601(src[i]!, src[i + 1]!, src[i + 2]!)
      const target = lut[y]!
      let keep = 1
      for (let k = 0; k < 3; k++) {
        const chroma = src[i + k]! - y
        if (target + chroma > max) keep = Math.min(keep, (max - target) / chroma)
        else if (target + chroma < 0) keep = Math.min(keep, -target / chroma)
      }
      for (let k = 0; k < 3; k++) {
        const v = Math.round(target + keep * (src[i + k]! - y))
        dst[i + k] = v < 0 ? 0 : v > max ? max : v
      }
    }
  }
  return withSamples(out, dst)
}

/** A histogram step: its table from the summed counts (one histogram of `bins` per table). */
function histogramStep (makeTable: (hist: Float64Array, depth: Depth, params: Params) => Uint16Array, modeOf: (p: Params) => Mode, applyWith: (image: RawImage, context: Uint8Array, params: Params) => Promise<RawImage>, summaryImage: (image: RawImage) => Promise<RawImage> = async i => i): GlobalStep {
  const summarise = async (image: RawImage, params: Params, place: StepPlace): Promise<Uint8Array> => bytesOf(histogram(await summaryImage(image), place.valid, modeOf(params)))
  // Summed as they come: counts over the whole image may pass 2^32, so doubles.
  const reducer = (params: Params, grid: GridInfo): Reducer => {
    const bins = maxSample(grid.format.depth) + 1
    const total = new Float64Array(bins * tables(modeOf(params), grid.format.channels))
    return {
      add: (_tile, summary) => {
        const counts = u32Words(summary)
        for (let i = 0; i < counts.length; i++) total[i]! += counts[i]!
      },
      finish: () => {
        const made: Uint16Array[] = []
        for (let k = 0; k < total.length / bins; k++) made.push(makeTable(total.subarray(k * bins, (k + 1) * bins), grid.format.depth, params))
        const lut = new Uint16Array(made.reduce((n, t) => n + t.length, 0))
        made.reduce((at, t) => { lut.set(t, at); return at + t.length }, 0)
        return { shared: bytesOf(lut) }
      },
    }
  }
  const apply = async (image: RawImage, params: Params, context: Uint8Array): Promise<RawImage> => await applyWith(image, context, params)
  return {
    needed: () => true,
    summarise,
    checkSummary: (summary, params, core, grid) => {
      const bins = maxSample(grid.format.depth) + 1
      const n = tables(modeOf(params), grid.format.channels)
      if (summary.length !== 4 * bins * n) return `a histogram summary is ${4 * bins * n} bytes here, not ${summary.length}`
      // Each histogram counts every pixel of the core once.
      const counts = u32Words(summary)
      for (let k = 0; k < n; k++) {
        let sum = 0
        for (let i = k * bins; i < (k + 1) * bins; i++) sum += counts[i]!
        if (sum !== core.width * core.height) return `a histogram of a ${core.width}x${core.height} core counts ${sum} pixels`
      }
      return undefined
    },
    reducer,
    apply,
    whole: async (image, params, place) => {
      const core = { ...place.valid, x: place.valid.x + place.origin.x, y: place.valid.y + place.origin.y }
      const reduce = reducer(params, { width: place.width, height: place.height, cores: [core], reach: 0, format: { channels: image.channels, depth: image.depth } })
      reduce.add(0, await summarise(image, params, place))
      const context = reduce.finish()
      return await apply(image, params, 'shared' in context ? context.shared : context.perTile[0]!)
    },
  }
}

const lutOf = u16Words

/** Rounds half to even, as OpenCV's cvRound. */
function roundEven (v: number): number {
  const r = Math.round(v)
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/**
 * cv::equalizeHist's table, in its float32 arithmetic, on the step's depth:
 * the first value present maps to 0, the rest by the cumulative count.
 */
function equalizeTable (hist: Float64Array, depth: Depth): Uint16Array {
  const max = maxSample(depth)
  const lut = new Uint16Array(hist.length)
  let i = 0
  while (i < hist.length && hist[i] === 0) i++
  const total = hist.reduce((a, b) => a + b, 0)
  if (i === hist.length || hist[i] === total) {
    for (let v = 0; v < lut.length; v++) lut[v] = v
    return lut
  }
  const scale = Math.fround(Math.fround(max) / Math.fround(total - hist[i]!))
  let cumulative = 0
  lut[i] = 0
  for (let v = i + 1; v < hist.length; v++) {
    cumulative += hist[v]!
    lut[v] = Math.min(max, roundEven(Math.fround(Math.fround(cumulative) * scale)))
  }
  return lut
}

/** Stretches [lower percentile, upper percentile] to the full range, clamping beyond. */
function normaliseTable (hist: Float64Array, depth: Depth, params: Params): Uint16Array {
  const max = maxSample(depth)
  const total = hist.reduce((a, b) => a + b, 0)
  const lowCount = total * (params.lower as number) / 100
  const highCount = total * (params.upper as number) / 100
  let lo = -1
  let hi = -1
  let cumulative = 0
  for (let v = 0; v < hist.length; v++) {
    cumulative += hist[v]!
    if (lo < 0 && cumulative > lowCount) lo = v
    if (hi < 0 && cumulative >= highCount) hi = v
  }
  const lut = new Uint16Array(hist.length)
  for (let v = 0; v < lut.length; v++) lut[v] = hi > lo && lo >= 0 ? Math.min(max, Math.max(0, Math.round((v - lo) * max / (hi - lo)))) : v
  return lut
}

/** Otsu's threshold t (the class below ends at t): the first t that best separates the two classes. */
function otsuLevel (hist: Float64Array): number {
  let total = 0
  let weighted = 0
  for (let v = 0; v < hist.length; v++) { total += hist[v]!; weighted += v * hist[v]! }
  let below = 0
  let belowWeighted = 0
  let best = -1
  let level = 0
  for (let t = 0; t < hist.length; t++) {
    below += hist[t]!
    belowWeighted += t * hist[t]!
    const above = total - below
    if (below === 0 || above === 0) continue
    const diff = belowWeighted / below - (weighted - belowWeighted) / above
    const between = below * above * diff * diff
    if (between > best) { best = between; level = t }
  }
  return level
}

const modeOf = (p: Params): Mode => p.channels as Mode

export const equalize: Operation = {
  name: 'equalize',
  aliases: ['equalise', 'equalize_hist'],
  family: 'colour',
  summary: 'histogram equalisation over the whole image (cv::equalizeHist\'s table); of the luma by default, colour kept',
  example: 'equalize:channels=each',
  params: [modeParam],
  radius: () => 0,
  colourOut: c => c,
  alpha: 'keep',
  apply: async () => { throw new Error('internal: equalize runs as a global step') },
  global: histogramStep(equalizeTable, modeOf, async (image, context, p) => applyTables(image, lutOf(context), modeOf(p))),
}

export const normalise: Operation = {
  name: 'normalise',
  aliases: ['normalize', 'autolevels'],
  family: 'colour',
  summary: 'stretches the whole image\'s range from the lower to the upper percentile to full scale (like sharp\'s normalise, which stretches LAB lightness: this stretches the BT.601 luma); colour kept',
  example: 'normalise:lower=2:upper=98',
  params: [
    { name: 'lower', kind: 'number', min: 0, max: 99, default: 1, description: 'percentile that becomes black' },
    { name: 'upper', kind: 'number', min: 1, max: 100, default: 99, description: 'percentile that becomes white' },
    modeParam,
  ],
  radius: () => 0,
  colourOut: c => c,
  alpha: 'keep',
  apply: async () => { throw new Error('internal: normalise runs as a global step') },
  check: p => {
    if ((p.lower as number) >= (p.upper as number)) throw new InvalidParameterError(`lower of normalise must be below its upper, got lower=${String(p.lower)}, upper=${String(p.upper)}`)
  },
  global: histogramStep(normaliseTable, modeOf, async (image, context, p) => applyTables(image, lutOf(context), modeOf(p))),
}

function thresholdLut (image: RawImage, level: number): RawImage {
  const max = maxSample(image.depth)
  return applyLut(image, v => v >= level ? max : 0)
}

/** The level on the image's depth from a value on the 8-bit scale. */
function levelOn (level: number, image: RawImage): number {
  return level * (maxSample(image.depth) / 255)
}

export const threshold: Operation = {
  name: 'threshold',
  family: 'colour',
  summary: 'luminance >= level becomes white, the rest black; grey out. level=auto: Otsu\'s level over the whole image',
  example: 'threshold:auto',
  params: [{ name: 'level', kind: 'number', min: 0, max: 255, default: 128, auto: true, description: 'on the 8-bit scale (scaled for 16-bit input); auto: Otsu\'s method' }],
  radius: () => 0,
  colourOut: () => 1,
  alpha: 'keep',
  apply: async (image, p) => thresholdLut(await toGrey(image), levelOn(p.level as number, image)),
  global: {
    ...histogramStep(
      (hist, depth) => {
        // Above Otsu's t is white (cv::THRESH_OTSU): level t + 1 in our >= rule.
        const lut = new Uint16Array(1)
        lut[0] = Math.min(maxSample(depth), otsuLevel(hist) + 1)
        return lut
      },
      () => 'luminance',
      async (image, context) => thresholdLut(await toGrey(image), lutOf(context)[0]!),
      toGrey),
    needed: p => p.level === 'auto',
  },
}

export const levelOperations = [equalize, normalise, threshold]
