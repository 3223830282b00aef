import type { StepPlace } from './operation.ts'
import { maxSample, samples, type RawImage, type Rect } from '../pixels/raw.ts'

/**
 * Canny's per-pixel half, as cv::Canny computes it: Sobel 3x3, L1 or L2
 * magnitude, non-maximum suppression in four directions with OpenCV's
 * fixed-point tangents, and the double threshold. Only hysteresis, which
 * reaches across tiles, is left (canny-hysteresis.ts).
 */

export const NONE = 0
export const WEAK = 1
export const STRONG = 2
/** OpenCV's tan(22.5 deg) in 15-bit fixed point. */
const TG22 = 13573
const CANNY_SHIFT = 15

/** The thresholds, on the 8-bit scale, and the magnitude. */
export interface CannyThresholds {
  low: number
  high: number
  l2: boolean
}

/** Sobel on q grown by one (the suppression's neighbours): magnitudes there, gradients on q itself. */
interface Gradients {
  mag: Int32Array | Float64Array
  /** mag's row length: q.width + 2. */
  mw: number
  dxs: Int32Array
  dys: Int32Array
}

/**
 * Each pixel of `q` (input coordinates) as none, weak or strong, after
 * non-maximum suppression. The gradient is zero outside the picture, as in
 * OpenCV; inside it the input must reach two pixels past `q`.
 */
export function classify (grey: RawImage, q: Rect, place: StepPlace, p: CannyThresholds): Uint8Array {
  const { width: w, height: h } = grey
  if (q.x < 2 || q.y < 2 || q.x + q.width + 2 > w || q.y + q.height + 2 > h) throw new Error(`internal: canny needs two pixels around ${JSON.stringify(q)} in ${w}x${h}`)
  const scale = maxSample(grey.depth) / 255
  // OpenCV caps L2 thresholds at 32767 on its 8-bit scale, before squaring.
  const low = Math.floor(p.l2 ? (Math.min(32767, p.low) * scale) ** 2 : p.low * scale)
  const high = Math.floor(p.l2 ? (Math.min(32767, p.high) * scale) ** 2 : p.high * scale)
  return suppress(sobel(grey, q, place, p.l2), q, low, high)
}

function sobel (grey: RawImage, q: Rect, place: StepPlace, l2: boolean): Gradients {
  const w = grey.width
  const src = samples(grey)
  const mw = q.width + 2
  const mh = q.height + 2
  // Integers either way; only a 16-bit L2 magnitude passes 2^31.
  const mag = l2 && grey.depth === 16 ? new Float64Array(mw * mh) : new Int32Array(mw * mh)
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
      mag[my * mw + mx] = l2 ? dx * dx + dy * dy : Math.abs(dx) + Math.abs(dy)
      if (mx >= 1 && my >= 1 && mx <= q.width && my <= q.height) {
        dxs[(my - 1) * q.width + mx - 1] = dx
        dys[(my - 1) * q.width + mx - 1] = dy
      }
    }
  }
  return { mag, mw, dxs, dys }
}

/** Keeps the pixels whose magnitude peaks across their gradient, weak over `low`, strong over `high`. */
function suppress (g: Gradients, q: Rect, low: number, high: number): Uint8Array {
  const { mag, mw, dxs, dys } = g
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
