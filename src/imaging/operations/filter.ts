import { sameChannels, type Operation } from './operation.ts'
import type { Params } from './params.ts'
import { createRaw, samples, type RawImage, withSamples } from '../pixels/raw.ts'
import { sharpPass } from '../pixels/sharp-pass.ts'

/**
 * libvips truncates a gaussian mask where it falls below `minAmplitude` of its
 * peak (vips_gaussmat). The halo follows the same rule, so it is exact rather
 * than a guess at 3 sigma: blur sigma 1 -> 1, 2 -> 3, 3 -> 5, 10 -> 17.
 */
export function gaussianRadius (sigma: number, minAmplitude: number): number {
  let x = 0
  while (Math.exp(-(x * x) / (2 * sigma * sigma)) >= minAmplitude) x++
  return Math.max(0, x - 1)
}

/** sharp's blur() default mask cut-off. */
const BLUR_MIN_AMPLITUDE = 0.2
/** libvips' sharpen stops its mask at 10% of the peak. */
const SHARPEN_MIN_AMPLITUDE = 0.1

const sizeRadius = (p: Params): number => Math.floor((p.size as number) / 2)

/**
 * Gaussian blur. The default sigma matches the prototype's 5x5 OpenCV kernel.
 * @example tileswarm submit --local --ops "blur:sigma=3" -i in.jpg -o out.jpg
 */
export const blur: Operation = {
  name: 'blur',
  aliases: ['gaussian_blur'],
  family: 'filter',
  summary: 'gaussian blur',
  example: 'blur:sigma=3',
  params: [{ name: 'sigma', kind: 'number', min: 0.3, max: 100, default: 1.1, description: 'standard deviation in pixels' }],
  radius: p => gaussianRadius(p.sigma as number, BLUR_MIN_AMPLITUDE),
  colourOut: sameChannels,
  alpha: 'filter',
  apply: async (image, p) => await sharpPass(image, s => s.blur({ sigma: p.sigma as number })),
  native: (s, p) => s.blur({ sigma: p.sigma as number }),
}

/**
 * Unsharp mask on lightness (libvips sharpen, as sharp's sharpen({ sigma })).
 * @example tileswarm submit --local --ops "sharpen:sigma=2" -i in.jpg -o out.jpg
 */
export const sharpen: Operation = {
  name: 'sharpen',
  family: 'filter',
  summary: 'unsharp mask on lightness',
  example: 'sharpen:sigma=2:flat=1:jagged=2',
  params: [
    { name: 'sigma', kind: 'number', min: 0.5, max: 10, default: 1, description: 'sigma of the gaussian mask' },
    { name: 'flat', kind: 'number', min: 0, max: 10, default: 1, description: 'sharpening of flat areas' },
    { name: 'jagged', kind: 'number', min: 0, max: 20, default: 2, description: 'sharpening of jagged areas' },
  ],
  radius: p => gaussianRadius(p.sigma as number, SHARPEN_MIN_AMPLITUDE),
  colourOut: sameChannels,
  alpha: 'filter',
  apply: async (image, p) => await sharpPass(image, s => s.sharpen({ sigma: p.sigma as number, m1: p.flat as number, m2: p.jagged as number })),
  native: (s, p) => s.sharpen({ sigma: p.sigma as number, m1: p.flat as number, m2: p.jagged as number }),
}

/** Median of a size x size window: removes salt-and-pepper noise. */
export const median: Operation = {
  name: 'median',
  family: 'filter',
  summary: 'median of a size x size window',
  example: 'median:size=5',
  params: [{ name: 'size', kind: 'number', min: 3, max: 15, default: 3, integer: true, odd: true, description: 'window width' }],
  radius: sizeRadius,
  colourOut: sameChannels,
  alpha: 'filter',
  apply: async (image, p) => await sharpPass(image, s => s.median(p.size as number)),
  native: (s, p) => s.median(p.size as number),
}

/** Mean of a size x size window. */
export const boxBlur: Operation = {
  name: 'box_blur',
  family: 'filter',
  summary: 'mean of a size x size window',
  example: 'box_blur:size=5',
  params: [{ name: 'size', kind: 'number', min: 3, max: 15, default: 3, integer: true, odd: true, description: 'window width' }],
  radius: sizeRadius,
  colourOut: sameChannels,
  alpha: 'filter',
  apply: async (image, p) => {
    const size = p.size as number
    return await sharpPass(image, s => s.convolve({ width: size, height: size, kernel: new Array<number>(size * size).fill(1), scale: size * size }))
  },
}

/**
 * A custom kernel: out = sum(kernel * window) / scale + offset. scale 0 means
 * the kernel's sum (or 1 when that is 0).
 * @example tileswarm submit --local --ops "convolve:kernel=[0,-1,0,-1,5,-1,0,-1,0]" -i in.jpg -o out.jpg
 */
export const convolve: Operation = {
  name: 'convolve',
  family: 'filter',
  summary: 'custom square kernel (odd size up to 15x15) with scale and offset',
  example: 'convolve:kernel=[0,-1,0,-1,5,-1,0,-1,0]',
  params: [
    { name: 'kernel', kind: 'kernel', maxSize: 15, default: [0, 0, 0, 0, 1, 0, 0, 0, 0], description: 'row-major weights' },
    { name: 'scale', kind: 'number', min: 0, max: 1e6, default: 0, description: 'divisor; 0 = sum of the kernel (1 if the sum is 0)' },
    { name: 'offset', kind: 'number', min: -65535, max: 65535, default: 0, description: 'added after scaling' },
  ],
  radius: p => Math.floor(Math.sqrt((p.kernel as number[]).length) / 2),
  colourOut: sameChannels,
  alpha: 'filter',
  apply: async (image, p) => {
    const kernel = p.kernel as number[]
    const size = Math.round(Math.sqrt(kernel.length))
    const sum = kernel.reduce((a, b) => a + b, 0)
    const scale = (p.scale as number) !== 0 ? p.scale as number : sum !== 0 ? sum : 1
    return await sharpPass(image, s => s.convolve({ width: size, height: size, kernel, scale, offset: p.offset as number }))
  },
}

/** Grey-level morphology: each sample becomes the min (erode) or max (dilate) of its window. */
function morphology (image: RawImage, r: number, pick: (a: number, b: number) => number): RawImage {
  const { width, height, channels } = image
  const src = samples(image)
  const rowPass = createRaw(width, height, image)
  const tmp = samples(rowPass)
  // Separable: a square window's extreme is the extreme of row extremes. The
  // input is padded by r, so only the interior is computed; the border is cropped.
  for (let y = 0; y < height; y++) {
    for (let x = r; x < width - r; x++) {
      for (let c = 0; c < channels; c++) {
        let v = src[(y * width + x - r) * channels + c]!
        for (let k = -r + 1; k <= r; k++) v = pick(v, src[(y * width + x + k) * channels + c]!)
        tmp[(y * width + x) * channels + c] = v
      }
    }
  }
  const out = createRaw(width, height, image)
  const dst = samples(out)
  for (let y = r; y < height - r; y++) {
    for (let x = r; x < width - r; x++) {
      for (let c = 0; c < channels; c++) {
        let v = tmp[((y - r) * width + x) * channels + c]!
        for (let k = -r + 1; k <= r; k++) v = pick(v, tmp[((y + k) * width + x) * channels + c]!)
        dst[(y * width + x) * channels + c] = v
      }
    }
  }
  return withSamples(out, dst)
}

const morphParams = [{ name: 'radius', kind: 'number' as const, min: 1, max: 7, default: 1, integer: true, description: 'window reach: the window is (2 radius + 1) wide' }]

export const erode: Operation = {
  name: 'erode',
  family: 'filter',
  summary: 'minimum of a (2 radius + 1) square window: dark areas grow',
  example: 'erode:radius=2',
  params: morphParams,
  radius: p => p.radius as number,
  colourOut: sameChannels,
  alpha: 'filter',
  apply: async (image, p) => morphology(image, p.radius as number, Math.min),
}

export const dilate: Operation = {
  name: 'dilate',
  family: 'filter',
  summary: 'maximum of a (2 radius + 1) square window: bright areas grow',
  example: 'dilate:radius=2',
  params: morphParams,
  radius: p => p.radius as number,
  colourOut: sameChannels,
  alpha: 'filter',
  apply: async (image, p) => morphology(image, p.radius as number, Math.max),
}

export const filterOperations = [blur, sharpen, median, boxBlur, convolve, erode, dilate]
