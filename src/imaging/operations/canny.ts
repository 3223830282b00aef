import { InvalidParameterError } from '../../common/errors.ts'
import type { GridInfo, Operation, StepPlace } from './operation.ts'
import type { Params } from './params.ts'
import { bytesOf, createRaw, maxSample, samples, u32Words, withSamples, type RawImage, type Rect } from '../pixels/raw.ts'
import { classify, STRONG, WEAK, type CannyThresholds } from './canny-gradient.ts'
import { bandDepth, bandIndex, bandSize, components, reducer } from './canny-hysteresis.ts'
import { gaussianRadius } from './filter.ts'
import { bt601Image } from './luma.ts'
import { sharpPass } from '../pixels/sharp-pass.ts'

/**
 * Canny as OpenCV computes it (cv::Canny): Sobel 3x3 on the BT.601 luma,
 * L1 or L2 magnitude, non-maximum suppression in four directions with
 * OpenCV's fixed-point tangents, a double threshold, then hysteresis: a weak
 * pixel is an edge when it is 8-connected to a strong one, however far away.
 *
 * Hysteresis is what tiles cannot do alone, so Canny is a global step: each
 * tile labels the connected weak/strong components of its core and reports
 * the labels on a band along its border; the coordinator unions them across
 * tiles and tells each tile which pixels around its core are on an edge.
 * The per-pixel half is in canny-gradient.ts, the labels and their union
 * across tiles in canny-hysteresis.ts; this room is the step's phases.
 */

interface CannyParams extends CannyThresholds {
  sigma: number
}

function cannyParams (p: Params): CannyParams {
  return { low: p.low as number, high: p.high as number, sigma: p.sigma as number, l2: p.gradient === 'l2' }
}

const blurRadius = (sigma: number): number => sigma > 0 ? gaussianRadius(sigma, 0.2) : 0

async function luma (image: RawImage, sigma: number): Promise<RawImage> {
  const grey = bt601Image(image)
  return sigma > 0 ? await sharpPass(grey, s => s.blur({ sigma }), 1) : grey
}

/** 0/max grey the size of the step's input, `on` at the pixels of `q` that are edges. */
function edgeImage (input: RawImage, q: Rect, on: (i: number) => boolean): RawImage {
  const out = createRaw(input.width, input.height, { channels: 1, depth: input.depth })
  const dst = samples(out)
  const max = maxSample(input.depth)
  for (let y = 0; y < q.height; y++) {
    for (let x = 0; x < q.width; x++) if (on(y * q.width + x)) dst[(q.y + y) * input.width + q.x + x] = max
  }
  return withSamples(out, dst)
}

/** A step's classification of a tile's region: the same step, tile and region (in the image) classify the same pixels alike. */
function memoKey (place: StepPlace): string {
  const { valid, origin } = place
  return `canny ${place.step} ${place.tile} ${valid.x + origin.x},${valid.y + origin.y},${valid.width}x${valid.height}`
}

/**
 * A tile's summary, u32 words: [n, the n labels that hold a strong pixel
 * (ascending), then a label for each pixel of the band along the core's sides
 * (bandIndex order)]. A label is its component's root + 1 within the core; 0
 * is not a candidate.
 */
async function summarise (image: RawImage, params: Params, place: StepPlace): Promise<Uint8Array> {
  const p = cannyParams(params)
  const q = place.valid
  const cls = classify(await luma(image, p.sigma), q, place, p)
  // The next phase classifies these very pixels again if its region is this core: kept for it, if it comes here.
  if (place.sameRegionNext === true) place.memo?.put(memoKey(place), cls)
  const roots = components(cls, q.width, q.height)
  const band = bandDepth(place.reach ?? 0)
  const hasStrong = new Uint8Array(cls.length)
  for (let i = 0; i < cls.length; i++) if (cls[i] === STRONG) hasStrong[roots[i]!] = 1
  const labels = new Uint32Array(bandSize(q.width, q.height, band))
  const strong = new Set<number>()
  for (let y = 0; y < q.height; y++) {
    for (let x = 0; x < q.width; x++) {
      const k = bandIndex(x, y, q.width, q.height, band)
      if (k < 0) { x = q.width - band - 1; continue }
      const root = roots[y * q.width + x]!
      labels[k] = root + 1
      if (root >= 0 && hasStrong[root] === 1) strong.add(root + 1)
    }
  }
  const head = Uint32Array.from([strong.size, ...[...strong].sort((a, b) => a - b)])
  return Buffer.concat([bytesOf(head), bytesOf(labels)])
}

/** Why a summary cannot be one `summarise` made for this core, or undefined. */
function checkSummary (summary: Uint8Array, _params: Params, core: Rect, grid: Omit<GridInfo, 'cores'>): string | undefined {
  if (summary.length < 4 || summary.length % 4 !== 0) return 'a canny summary is whole u32 words'
  const words = u32Words(summary)
  const band = bandSize(core.width, core.height, bandDepth(grid.reach))
  const strong = words[0]!
  if (words.length !== 1 + strong + band) return `a canny summary of a ${core.width}x${core.height} core has ${band} band labels and its strong ones: ${words.length} words, not ${1 + strong + band}`
  const area = core.width * core.height
  for (let i = 1; i < words.length; i++) if (words[i]! > area) return `label ${words[i]} is past the core's ${area} pixels`
  for (let i = 2; i <= strong; i++) if (words[i]! <= words[i - 1]!) return 'a canny summary\'s strong labels are not ascending'
  return undefined
}

/** The edges of `place.valid`: a component is an edge if it holds a strong pixel or one the context says is on an edge. */
async function apply (image: RawImage, params: Params, context: Uint8Array, place: StepPlace): Promise<RawImage> {
  const p = cannyParams(params)
  const q = place.valid
  const cls = place.memo?.take(memoKey(place)) ?? classify(await luma(image, p.sigma), q, place, p)
  const roots = components(cls, q.width, q.height)
  const edge = new Uint8Array(cls.length)
  for (let i = 0; i < cls.length; i++) if (cls[i] === STRONG) edge[roots[i]!] = 1
  const on = u32Words(context)
  for (let k = 0; k + 1 < on.length; k += 2) {
    const x = on[k]! - place.origin.x - q.x
    const y = on[k + 1]! - place.origin.y - q.y
    if (x < 0 || y < 0 || x >= q.width || y >= q.height) continue
    const root = roots[y * q.width + x]!
    if (root >= 0) edge[root] = 1
  }
  return edgeImage(image, q, i => roots[i]! >= 0 && edge[roots[i]!] === 1)
}

/** The whole image, the textbook way: a flood from every strong pixel through the weak ones. */
async function whole (image: RawImage, params: Params, place: StepPlace): Promise<RawImage> {
  const p = cannyParams(params)
  const grey = await luma(image, p.sigma)
  const q = place.valid
  const cls = classify(grey, q, place, p)
  const edge = new Uint8Array(cls.length)
  const stack: number[] = []
  for (let i = 0; i < cls.length; i++) if (cls[i] === STRONG) { edge[i] = 1; stack.push(i) }
  while (stack.length > 0) {
    const i = stack.pop()!
    const x = i % q.width
    const y = (i - x) / q.width
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx
        const ny = y + dy
        if (nx < 0 || ny < 0 || nx >= q.width || ny >= q.height) continue
        const j = ny * q.width + nx
        if (cls[j] === WEAK && edge[j] === 0) { edge[j] = 1; stack.push(j) }
      }
    }
  }
  return edgeImage(image, q, i => edge[i] === 1)
}

export const canny: Operation = {
  name: 'canny',
  aliases: ['edge_detection'],
  family: 'edge',
  summary: 'Canny edges as OpenCV finds them (luma, Sobel 3x3, hysteresis across the whole image), 0/255 grey out; edge_detection is canny 100/200, as the prototype',
  example: 'canny:low=100:high=200',
  params: [
    { name: 'low', kind: 'number', min: 0, max: 2000, default: 100, description: 'weak edge threshold (8-bit scale; OpenCV\'s threshold1)' },
    { name: 'high', kind: 'number', min: 0, max: 2000, default: 200, description: 'strong edge threshold (OpenCV\'s threshold2)' },
    { name: 'sigma', kind: 'number', min: 0, max: 10, default: 0, description: 'gaussian pre-blur, 0.3 or more; 0 for none, as OpenCV' },
    { name: 'gradient', kind: 'choice', choices: ['l1', 'l2'], default: 'l1', description: 'magnitude |dx|+|dy| (OpenCV\'s default) or sqrt(dx^2+dy^2)' },
  ],
  check: p => {
    if ((p.low as number) > (p.high as number)) throw new InvalidParameterError(`low of canny must be at most its high, got low=${String(p.low)}, high=${String(p.high)} (high is 200 unless given)`)
    const sigma = p.sigma as number
    if (sigma > 0 && sigma < 0.3) throw new InvalidParameterError(`sigma of canny must be 0 (no blur) or a number between 0.3 and 10, got ${sigma}`)
  },
  radius: p => blurRadius(p.sigma as number) + 2,
  colourOut: () => 1,
  alpha: 'drop',
  apply: async () => { throw new Error('internal: canny runs as a global step') },
  global: { needed: () => true, summarise, checkSummary, reducer, apply, whole },
}
