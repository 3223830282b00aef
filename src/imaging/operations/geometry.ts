import { sharpLib } from '../pixels/sharp-lib.ts'
import { InvalidParameterError } from '../../common/errors.ts'
import { MAX_IMAGE_SIDE_PX } from '../../protocol/constants.ts'
import { gatedPass } from '../pixels/gate.ts'
import { sameChannels, type Operation } from './operation.ts'
import type { Params } from './params.ts'
import { allocRawUnsafe, extract, freeBuffer, samples, withSamples, type Channels, type RawImage } from '../pixels/raw.ts'

/**
 * Steps that move pixels or change the image's size. They run on the whole
 * image (see JobPlan): each worker runs them once on the input it decoded,
 * and the tiles are cut from what they give.
 */

const noRadius = (): number => 0
const wholeOnly = async (): Promise<RawImage> => { throw new Error('internal: a geometry step runs on the whole image') }

/** out(x, y) = in(source(x, y)), on every channel. */
function remap (image: RawImage, width: number, height: number, source: (x: number, y: number) => number): RawImage {
  const out = allocRawUnsafe(width, height, image)
  const src = samples(image)
  const dst = samples(out)
  const c = image.channels
  for (let y = 0, o = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = source(x, y) * c
      for (let k = 0; k < c; k++) dst[o++] = src[i + k]!
    }
  }
  return withSamples(out, dst)
}

export const rotate: Operation = {
  name: 'rotate',
  family: 'geometry',
  summary: 'rotates clockwise by a right angle (as sharp\'s rotate)',
  example: 'rotate:angle=90',
  params: [{ name: 'angle', kind: 'choice', choices: ['90', '180', '270'], default: '90', description: 'degrees clockwise' }],
  radius: noRadius,
  colourOut: sameChannels,
  alpha: 'keep',
  apply: wholeOnly,
  geometry: {
    size: (width, height, p) => p.angle === '180' ? { width, height } : { width: height, height: width },
    apply: async (image, p) => {
      const { width: w, height: h } = image
      if (p.angle === '180') return remap(image, w, h, (x, y) => (h - 1 - y) * w + (w - 1 - x))
      // Clockwise: the output's row y is the input's column y, read bottom up.
      if (p.angle === '90') return remap(image, h, w, (x, y) => (h - 1 - x) * w + y)
      return remap(image, h, w, (x, y) => x * w + (w - 1 - y))
    },
  },
}

/** A mirror: the same size, each pixel from its mirror image's place. */
function mirror (name: string, summary: string, source: (image: RawImage) => (x: number, y: number) => number, aliases?: string[]): Operation {
  return {
    name,
    ...(aliases !== undefined ? { aliases } : {}),
    family: 'geometry',
    summary,
    example: name,
    params: [],
    radius: noRadius,
    colourOut: sameChannels,
    alpha: 'keep',
    apply: wholeOnly,
    geometry: {
      size: (width, height) => ({ width, height }),
      apply: async image => remap(image, image.width, image.height, source(image)),
    },
  }
}

export const flip = mirror('flip', 'mirrors top to bottom (as sharp\'s flip)', image => (x, y) => (image.height - 1 - y) * image.width + x)
export const flop = mirror('flop', 'mirrors left to right (as sharp\'s flop)', image => (x, y) => y * image.width + (image.width - 1 - x), ['mirror'])

function cropRect (width: number, height: number, p: Params): { x: number, y: number, width: number, height: number } {
  const x = p.left as number
  const y = p.top as number
  const w = (p.width as number) === 0 ? width - x : p.width as number
  const h = (p.height as number) === 0 ? height - y : p.height as number
  if (x >= width || y >= height || w < 1 || h < 1 || x + w > width || y + h > height) {
    throw new InvalidParameterError(`crop must lie inside the image of ${width}x${height}, got left=${x}, top=${y}, width=${String(p.width)}, height=${String(p.height)}`)
  }
  return { x, y, width: w, height: h }
}

const position = (name: string, description: string) => ({ name, kind: 'number' as const, min: 0, max: MAX_IMAGE_SIDE_PX, default: 0, integer: true, description })

export const crop: Operation = {
  name: 'crop',
  aliases: ['extract'],
  family: 'geometry',
  summary: 'keeps a rectangle of the image',
  example: 'crop:left=100:top=50:width=640:height=480',
  params: [
    position('left', 'first column kept'),
    position('top', 'first row kept'),
    position('width', 'columns kept; 0: up to the right edge'),
    position('height', 'rows kept; 0: down to the bottom edge'),
  ],
  radius: noRadius,
  colourOut: sameChannels,
  alpha: 'keep',
  apply: wholeOnly,
  geometry: {
    size: (width, height, p) => { const r = cropRect(width, height, p); return { width: r.width, height: r.height } },
    apply: async (image, p) => {
      const out = extract(image, cropRect(image.width, image.height, p))
      // extract hands back the image itself when the crop is all of it: the step's output is its own.
      return out === image ? { ...image, data: Buffer.from(image.data) } : out
    },
  },
}

const KERNELS = ['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3'] as const

const FITS = ['fill', 'inside', 'outside', 'cover', 'contain'] as const
type Fit = typeof FITS[number]

/** Both sides given and a fit other than fill (or shrink_only): sharp's own resize makes it, at the size resizeSize says. */
function sharpFits (p: Params): boolean {
  return (p.width as number) > 0 && (p.height as number) > 0 && (p.fit !== 'fill' || p.shrink_only === 'true')
}

/** The box of both sides as sharp sizes it (its ResolveShrink, then libvips' rounding; a test holds them to sharp's). */
function fitSize (width: number, height: number, w: number, h: number, fit: Fit, shrinkOnly: boolean): { width: number, height: number } {
  let hs = width / w
  let vs = height / h
  if (fit === 'inside' || fit === 'contain') hs = vs = Math.max(hs, vs)
  if (fit === 'outside' || fit === 'cover') hs = vs = Math.min(hs, vs)
  if (shrinkOnly) { hs = Math.max(1, hs); vs = Math.max(1, vs) }
  hs = Math.min(hs, width)
  vs = Math.min(vs, height)
  let out = { width: Math.round(width / hs), height: Math.round(height / vs) }
  if (fit === 'cover') out = { width: Math.min(out.width, w), height: Math.min(out.height, h) }
  if (fit === 'contain') out = { width: w, height: h }
  return out
}

function resizeSize (width: number, height: number, p: Params): { width: number, height: number } {
  const scale = p.scale as number
  const w = p.width as number
  const h = p.height as number
  const shrinkOnly = p.shrink_only === 'true'
  let size: { width: number, height: number }
  if (scale > 0) {
    if (w > 0 || h > 0) throw new InvalidParameterError('resize takes a scale or a width and height, not both')
    size = { width: Math.round(width * scale), height: Math.round(height * scale) }
  } else if (w > 0 && h > 0) size = fitSize(width, height, w, h, p.fit as Fit, shrinkOnly)
  else if (w > 0) size = { width: w, height: Math.round(height * w / width) }
  else if (h > 0) size = { width: Math.round(width * h / height), height: h }
  else throw new InvalidParameterError('resize needs a width, a height or a scale (e.g. resize:width=800 or resize:scale=0.5)')
  // One side or a scale keeps the aspect ratio: not enlarged means not resized at all.
  if (shrinkOnly && !(w > 0 && h > 0) && (size.width > width || size.height > height)) size = { width, height }
  return { width: Math.max(1, size.width), height: Math.max(1, size.height) }
}

export const resize: Operation = {
  name: 'resize',
  family: 'geometry',
  summary: 'resizes with sharp\'s resize (libvips reduce/affine): to a width, a height (the other keeps the aspect ratio), a scale, or both sides as fit says',
  example: 'resize:width=2048:height=2048:fit=inside:shrink_only=true',
  params: [
    { name: 'width', kind: 'number', min: 0, max: MAX_IMAGE_SIDE_PX, default: 0, integer: true, description: 'output width; 0: from the height or scale' },
    { name: 'height', kind: 'number', min: 0, max: MAX_IMAGE_SIDE_PX, default: 0, integer: true, description: 'output height; 0: from the width or scale' },
    { name: 'scale', kind: 'number', min: 0, max: 16, default: 0, description: 'factor for both sides; 0: use width/height' },
    { name: 'kernel', kind: 'choice', choices: KERNELS, default: 'lanczos3', description: 'interpolation kernel' },
    { name: 'fit', kind: 'choice', choices: FITS, default: 'fill', description: 'with both sides: fill stretches to both; inside fits within them, aspect kept (the long side at most); outside covers them, aspect kept (the short side at least); cover fills them exactly, aspect kept, cropping the overflow at the centre; contain fits within and letterboxes to both with black' },
    { name: 'shrink_only', kind: 'choice', choices: ['false', 'true'], default: 'false', description: 'true: never enlarge (sharp\'s withoutEnlargement): an image already smaller is left as it is' },
  ],
  check: p => { resizeSize(1000, 1000, p) },
  radius: noRadius,
  colourOut: sameChannels,
  alpha: 'keep',
  apply: wholeOnly,
  geometry: {
    size: resizeSize,
    apply: async (image, p) => {
      const size = resizeSize(image.width, image.height, p)
      if (size.width === image.width && size.height === image.height && p.shrink_only === 'true') return { ...image, data: Buffer.from(image.data) }
      // libvips has no 8-bit grey+alpha colourspace to hand it back in: that one goes through as RGBA with three equal channels.
      const viaRgba = image.channels === 2 && image.depth === 8
      const input = viaRgba ? greyAlphaToRgba(image) : image
      const wide = image.depth === 16
      const colour = input.channels <= 2 ? (wide ? 'grey16' : 'b-w') : (wide ? 'rgb16' : 'srgb')
      const { data, info } = await gatedPass(async () => await sharpLib()(samples(input), { raw: { width: input.width, height: input.height, channels: input.channels } })
        // Both sides, always: the tiles were planned from this size. (sharp's own resize({ width }) rounds the
        // other side its own way, and comes a pixel short where it is k + 0.5: so it is not asked for.)
        .resize(sharpFits(p)
          ? { width: p.width as number, height: p.height as number, fit: p.fit as Fit, withoutEnlargement: p.shrink_only === 'true', kernel: p.kernel as typeof KERNELS[number] }
          : { ...size, fit: 'fill', kernel: p.kernel as typeof KERNELS[number] })
        .toColourspace(colour)
        .raw({ depth: wide ? 'ushort' : 'uchar' })
        .toBuffer({ resolveWithObject: true }))
      if (input !== image) freeBuffer(input.data)
      if (info.width !== size.width || info.height !== size.height || info.channels !== input.channels) {
        throw new Error(`internal: resize gave ${info.width}x${info.height}x${info.channels}, expected ${size.width}x${size.height}x${input.channels}`)
      }
      const out = { ...size, channels: input.channels, depth: image.depth, data }
      return viaRgba ? rgbaToGreyAlpha(out) : out
    },
  },
}

function greyAlphaToRgba (image: RawImage): RawImage {
  return remapChannels(image, 4, [0, 0, 0, 1])
}

function rgbaToGreyAlpha (image: RawImage): RawImage {
  return remapChannels(image, 2, [0, 3])
}

/** out channel k = in channel from[k], pixel by pixel. */
function remapChannels (image: RawImage, channels: Channels, from: number[]): RawImage {
  const out = allocRawUnsafe(image.width, image.height, { channels, depth: image.depth })
  const src = samples(image)
  const dst = samples(out)
  const c = image.channels
  for (let i = 0, o = 0; i < src.length; i += c) for (const k of from) dst[o++] = src[i + k]!
  return withSamples(out, dst)
}

export const geometryOperations = [resize, rotate, flip, flop, crop]
