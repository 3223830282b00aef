import type { Operation } from './operation.ts'
import { createRaw, maxSample, freeBuffer, samples, type RawImage, withSamples } from '../pixels/raw.ts'
import { toGrey } from './luma.ts'

/**
 * 3x3 gradient magnitude sqrt(gx^2 + gy^2) / norm * scale, clamped. gx uses
 * `kx`; gy is its transpose. The input is padded by 1, so the border is not computed.
 */
function gradientMagnitude (grey: RawImage, kx: readonly number[], norm: number, scale: number): RawImage {
  const { width, height } = grey
  const src = samples(grey)
  const out = createRaw(width, height, grey)
  const dst = samples(out)
  const max = maxSample(grey.depth)
  const [a, b, c, d, , f, g, h, i] = kx as [number, number, number, number, number, number, number, number, number]
  const k = scale / norm
  for (let y = 1; y < height - 1; y++) {
    const row = y * width
    for (let x = 1; x < width - 1; x++) {
      const p = row + x
      const nw = src[p - width - 1]!; const n = src[p - width]!; const ne = src[p - width + 1]!
      const w = src[p - 1]!; const e = src[p + 1]!
      const sw = src[p + width - 1]!; const s = src[p + width]!; const se = src[p + width + 1]!
      const gx = a * nw + b * n + c * ne + d * w + f * e + g * sw + h * s + i * se
      // gy: the transpose of kx
      const gy = a * nw + d * n + g * ne + b * w + h * e + c * sw + f * s + i * se
      const v = Math.round(Math.sqrt(gx * gx + gy * gy) * k)
      dst[p] = v > max ? max : v
    }
  }
  return withSamples(out, dst)
}

function laplacianMagnitude (grey: RawImage, scale: number): RawImage {
  const { width, height } = grey
  const src = samples(grey)
  const out = createRaw(width, height, grey)
  const dst = samples(out)
  const max = maxSample(grey.depth)
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const p = y * width + x
      const lap = src[p - width]! + src[p + width]! + src[p - 1]! + src[p + 1]! - 4 * src[p]!
      const v = Math.round(Math.abs(lap) * scale)
      dst[p] = v > max ? max : v
    }
  }
  return withSamples(out, dst)
}

const scaleParam = [{ name: 'scale', kind: 'number' as const, min: 0.01, max: 100, default: 1, description: 'multiplies the magnitude before clamping' }]

function gradientOperation (name: string, summary: string, kx: number[], norm: number, aliases?: string[]): Operation {
  return {
    name,
    aliases,
    family: 'edge',
    summary,
    example: `${name}:scale=2`,
    params: scaleParam,
    radius: () => 1,
    colourOut: () => 1,
    alpha: 'drop',
    apply: async (image, p) => {
      const grey = await toGrey(image)
      const out = gradientMagnitude(grey, kx, norm, p.scale as number)
      freeBuffer(grey.data, [image.data])
      return out
    },
  }
}

/** Sobel gradient magnitude of the luminance, grey out (edge_detection is canny, as in the prototype). */
export const sobel = gradientOperation('sobel', 'Sobel gradient magnitude of luminance, grey out', [-1, 0, 1, -2, 0, 2, -1, 0, 1], 1)
export const prewitt = gradientOperation('prewitt', 'Prewitt gradient magnitude of luminance, grey out', [-1, 0, 1, -1, 0, 1, -1, 0, 1], 1)
/** Scharr's weights sum to 16 against Sobel's 4: normalised to Sobel's scale. */
export const scharr = gradientOperation('scharr', 'Scharr gradient magnitude of luminance (on Sobel\'s scale), grey out', [-3, 0, 3, -10, 0, 10, -3, 0, 3], 4)

export const laplacian: Operation = {
  name: 'laplacian',
  family: 'edge',
  summary: 'absolute 4-neighbour Laplacian of luminance, grey out',
  example: 'laplacian:scale=4',
  params: scaleParam,
  radius: () => 1,
  colourOut: () => 1,
  alpha: 'drop',
  apply: async (image, p) => {
    const grey = await toGrey(image)
    const out = laplacianMagnitude(grey, p.scale as number)
    freeBuffer(grey.data, [image.data])
    return out
  },
}

export const edgeOperations = [sobel, prewitt, scharr, laplacian]
