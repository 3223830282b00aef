import { InvalidParameterError } from '../../common/errors.ts'
import type { GridInfo, Operation, Reducer, StepPlace } from '../operation.ts'
import type { Params } from '../params.ts'
import { allocRawUnsafe, bytesOf, createRaw, growRect, maxSample, samples, u32Words, withSamples, type RawImage, type Rect } from '../raw.ts'
import { gaussianRadius } from './filter.ts'
import { sharpPass } from './sharp-pass.ts'

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
 */

const NONE = 0
const WEAK = 1
const STRONG = 2
/** OpenCV's tan(22.5 deg) in 15-bit fixed point. */
const TG22 = 13573
const CANNY_SHIFT = 15

interface CannyParams {
  low: number
  high: number
  sigma: number
  l2: boolean
}

function cannyParams (p: Params): CannyParams {
  return { low: p.low as number, high: p.high as number, sigma: p.sigma as number, l2: p.gradient === 'l2' }
}

const blurRadius = (sigma: number): number => sigma > 0 ? gaussianRadius(sigma, 0.2) : 0

/** BT.601 luma of an RGB sample, in OpenCV 4's 15-bit fixed point (cv::cvtColor RGB2GRAY): the same integers. */
export function bt601 (r: number, g: number, b: number): number {
  return (r * 9798 + g * 19235 + b * 3735 + 16384) >>> 15
}

/** The luma image (grey stays as it is), on the step's own depth. */
function bt601Image (image: RawImage): RawImage {
  if (image.channels === 1) return image
  const grey = allocRawUnsafe(image.width, image.height, { channels: 1, depth: image.depth })
  const src = samples(image)
  const dst = samples(grey)
  for (let i = 0, j = 0; j < dst.length; i += 3, j++) dst[j] = bt601(src[i]!, src[i + 1]!, src[i + 2]!)
  return withSamples(grey, dst)
}

async function luma (image: RawImage, sigma: number): Promise<RawImage> {
  const grey = bt601Image(image)
  return sigma > 0 ? await sharpPass(grey, s => s.blur({ sigma }), 1) : grey
}

/**
 * Each pixel of `q` (input coordinates) as none, weak or strong, after
 * non-maximum suppression. The gradient is zero outside the picture, as in
 * OpenCV; inside it the input must reach two pixels past `q`.
 */
function classify (grey: RawImage, q: Rect, place: StepPlace, p: CannyParams): Uint8Array {
  const { width: w, height: h } = grey
  if (q.x < 2 || q.y < 2 || q.x + q.width + 2 > w || q.y + q.height + 2 > h) throw new Error(`internal: canny needs two pixels around ${JSON.stringify(q)} in ${w}x${h}`)
  const src = samples(grey)
  const scale = maxSample(grey.depth) / 255
  // OpenCV caps L2 thresholds at 32767 on its 8-bit scale, before squaring.
  const low = Math.floor(p.l2 ? (Math.min(32767, p.low) * scale) ** 2 : p.low * scale)
  const high = Math.floor(p.l2 ? (Math.min(32767, p.high) * scale) ** 2 : p.high * scale)
  // Magnitudes on q grown by one (the suppression's neighbours), gradients on q.
  const mw = q.width + 2
  const mh = q.height + 2
  // Integers either way; only a 16-bit L2 magnitude passes 2^31.
  const mag = p.l2 && grey.depth === 16 ? new Float64Array(mw * mh) : new Int32Array(mw * mh)
  const dxs = new Int32Array(q.width * q.height)
  const dys = new Int32Array(q.width * q.height)
  const { x: ox, y: oy } = place.origin
  for (let my = 0; my < mh; my++) {
    const y = q.y - 1 + my
    if (y + oy < 0 || y + oy >= place.height) continue
    for (let mx = 0; mx < mw; mx++) {
      const x = q.x - 1 + mx
      if (x + ox < 0 || x + ox >= place.width) continue
      const i = y * w + x
      const nw = src[i - w - 1]!; const n = src[i - w]!; const ne = src[i - w + 1]!
      const west = src[i - 1]!; const east = src[i + 1]!
      const sw = src[i + w - 1]!; const s = src[i + w]!; const se = src[i + w + 1]!
      const dx = (ne + 2 * east + se) - (nw + 2 * west + sw)
      const dy = (sw + 2 * s + se) - (nw + 2 * n + ne)
      mag[my * mw + mx] = p.l2 ? dx * dx + dy * dy : Math.abs(dx) + Math.abs(dy)
      if (mx >= 1 && my >= 1 && mx <= q.width && my <= q.height) {
        dxs[(my - 1) * q.width + mx - 1] = dx
        dys[(my - 1) * q.width + mx - 1] = dy
      }
    }
  }
  const cls = new Uint8Array(q.width * q.height)
  for (let y = 0; y < q.height; y++) {
    for (let x = 0; x < q.width; x++) {
      const j = (y + 1) * mw + x + 1
      const m = mag[j]!
      if (!(m > low)) continue
      const xs = dxs[y * q.width + x]!
      const ys = dys[y * q.width + x]!
      const ax = Math.abs(xs)
      const ay = Math.abs(ys) * (1 << CANNY_SHIFT)
      const tg22x = ax * TG22
      let peak: boolean
      if (ay < tg22x) {
        peak = m > mag[j - 1]! && m >= mag[j + 1]!
      } else {
        const tg67x = tg22x + ax * (1 << (CANNY_SHIFT + 1))
        if (ay > tg67x) peak = m > mag[j - mw]! && m >= mag[j + mw]!
        else {
          const s = (xs < 0) !== (ys < 0) ? -1 : 1
          peak = m > mag[j - mw - s]! && m > mag[j + mw + s]!
        }
      }
      if (peak) cls[y * q.width + x] = m > high ? STRONG : WEAK
    }
  }
  return cls
}

/** 8-connected components of the weak and strong pixels: each pixel's root (-1: not a candidate). */
function components (cls: Uint8Array, width: number, height: number): Int32Array {
  const parent = new Int32Array(cls.length).fill(-1)
  const find = (i: number): number => {
    while (parent[i] !== i) { parent[i] = parent[parent[i]!]!; i = parent[i]! }
    return i
  }
  const union = (a: number, b: number): void => {
    const ra = find(a)
    const rb = find(b)
    // The smaller index is the root: labels do not depend on the order of unions.
    if (ra < rb) parent[rb] = ra
    else if (rb < ra) parent[ra] = rb
  }
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x
      if (cls[i] === NONE) continue
      parent[i] = i
      if (x > 0 && cls[i - 1] !== NONE) union(i, i - 1)
      if (y > 0) {
        const up = i - width
        if (x > 0 && cls[up - 1] !== NONE) union(i, up - 1)
        if (cls[up] !== NONE) union(i, up)
        if (x < width - 1 && cls[up + 1] !== NONE) union(i, up + 1)
      }
    }
  }
  for (let i = 0; i < parent.length; i++) if (parent[i]! >= 0) parent[i] = find(i)
  return parent
}

/**
 * How deep along its sides a tile reports its labels: a pixel `reach` outside
 * a core lies at most reach - 1 deep in its own; and at least the side
 * itself, where tiles meet.
 */
function bandDepth (reach: number): number {
  return Math.max(reach, 1)
}

function bandSize (width: number, height: number, band: number): number {
  const inner = Math.max(0, width - 2 * band) * Math.max(0, height - 2 * band)
  return width * height - inner
}

/**
 * Where (x, y) of a width x height core comes in the band's row-by-row order
 * (what summaries list), or -1 if it is deeper than the band.
 */
export function bandIndex (x: number, y: number, width: number, height: number, band: number): number {
  if (width <= 2 * band) return y * width + x
  const middle = Math.max(0, height - 2 * band)
  if (y < band) return y * width + x
  if (y < band + middle) {
    if (x >= band && x < width - band) return -1
    return band * width + (y - band) * 2 * band + (x < band ? x : x - width + 2 * band)
  }
  return band * width + middle * 2 * band + (y - band - middle) * width + x
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

/**
 * Unions each tile's side labels with its neighbours' across the tile
 * sides; a component with a strong pixel anywhere is an edge. Each tile is
 * told the edge pixels on its core's side and in the reach around it, which
 * is all its own labelling cannot see. Cores are a regular grid, so a
 * pixel's tile and its place in that tile's band are arithmetic.
 */
function reducer (_params: Params, grid: GridInfo): Reducer {
  const { width, height, cores, reach } = grid
  const band = bandDepth(reach)
  const tileW = cores[0]!.width
  const tileH = cores[0]!.height
  const columns = Math.ceil(width / tileW)
  const labels: Uint32Array[] = []
  const strongOf: Uint32Array[] = []
  return {
    add: (tile, summary) => {
      const words = u32Words(summary)
      strongOf[tile] = words.subarray(1, 1 + words[0]!)
      labels[tile] = words.subarray(1 + words[0]!)
    },
    finish: () => {
      // A node per (tile, label) that shows in the band; labels[t][k] becomes node base[t] + its index there.
      const nodeOf: Array<Map<number, number>> = []
      let nodes = 0
      for (let t = 0; t < cores.length; t++) {
        const map = new Map<number, number>()
        for (const label of labels[t]!) if (label !== 0 && !map.has(label)) map.set(label, nodes++)
        nodeOf.push(map)
      }
      const parent = new Int32Array(nodes)
      for (let n = 0; n < nodes; n++) parent[n] = n
      const find = (i: number): number => {
        while (parent[i] !== i) { parent[i] = parent[parent[i]!]!; i = parent[i]! }
        return i
      }
      /** The node of image pixel (x, y), or -1: not a candidate, or deeper than its tile's band. */
      const nodeAt = (x: number, y: number): number => {
        const t = Math.floor(y / tileH) * columns + Math.floor(x / tileW)
        const core = cores[t]!
        const k = bandIndex(x - core.x, y - core.y, core.width, core.height, band)
        if (k < 0) return -1
        const label = labels[t]![k]!
        return label === 0 ? -1 : nodeOf[t]!.get(label)!
      }
      for (const core of cores) {
        // Along the core's sides, each candidate joins its candidate neighbours across them.
        for (let y = core.y; y < core.y + core.height; y++) {
          const side = y === core.y || y === core.y + core.height - 1
          for (let x = core.x; x < core.x + core.width; x += side || x === core.x + core.width - 1 ? 1 : core.width - 1) {
            const a = nodeAt(x, y)
            if (a < 0) continue
            for (let dy = -1; dy <= 1; dy++) {
              for (let dx = -1; dx <= 1; dx++) {
                const nx = x + dx
                const ny = y + dy
                if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue
                if (nx >= core.x && nx < core.x + core.width && ny >= core.y && ny < core.y + core.height) continue
                const b = nodeAt(nx, ny)
                if (b < 0) continue
                const ra = find(a)
                const rb = find(b)
                if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb)
              }
            }
          }
        }
      }
      const edgeRoot = new Uint8Array(nodes)
      for (let t = 0; t < cores.length; t++) {
        for (const label of strongOf[t]!) {
          const node = nodeOf[t]!.get(label)
          if (node !== undefined) edgeRoot[find(node)] = 1
        }
      }
      const perTile = cores.map(core => {
        const on: number[] = []
        const r = growRect(core, reach, width, height)
        for (let y = r.y; y < r.y + r.height; y++) {
          const inner = y > core.y && y < core.y + core.height - 1
          for (let x = r.x; x < r.x + r.width; x++) {
            // Deep inside its own core a tile's labels say it all.
            if (inner && x > core.x && x < core.x + core.width - 1) { x = core.x + core.width - 2; continue }
            const node = nodeAt(x, y)
            if (node >= 0 && edgeRoot[find(node)] === 1) on.push(x, y)
          }
        }
        return bytesOf(Uint32Array.from(on))
      })
      return { perTile }
    },
  }
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
    if ((p.low as number) > (p.high as number)) throw new InvalidParameterError(`Expected low <= high for canny but received low=${String(p.low)}, high=${String(p.high)} (high is 200 unless given)`)
    const sigma = p.sigma as number
    if (sigma > 0 && sigma < 0.3) throw new InvalidParameterError(`Expected 0 (no blur) or a number between 0.3 and 10 for sigma of canny but received ${sigma}`)
  },
  radius: p => blurRadius(p.sigma as number) + 2,
  colourOut: () => 1,
  alpha: 'drop',
  apply: async () => { throw new Error('internal: canny runs as a global step') },
  global: { needed: () => true, summarise, checkSummary, reducer, apply, whole },
}
