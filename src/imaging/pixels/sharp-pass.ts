import { sharpLib } from './sharp-lib.ts'
import type { Sharp } from 'sharp'
import { gatedPass } from './gate.ts'
import { allocRawUnsafe, samples, withSamples, type RawImage } from './raw.ts'

/**
 * One sharp pipeline over raw pixels. sharp orders operations itself, so each
 * tileswarm operation is its own pass, and the colourspace is set explicitly
 * (a 1-channel raw image otherwise comes back with 3, 16-bit with 8).
 */
export async function sharpPass (image: RawImage, build: (s: Sharp) => Sharp, outChannels: 1 | 3 = image.channels as 1 | 3): Promise<RawImage> {
  const input = sharpLib()(samples(image), { raw: { width: image.width, height: image.height, channels: image.channels } })
  const wide = image.depth === 16
  const space = outChannels === 1 ? (wide ? 'grey16' : 'b-w') : (wide ? 'rgb16' : 'srgb')
  const { data, info } = await gatedPass(async () => await build(input)
    .toColourspace(space)
    .raw({ depth: wide ? 'ushort' : 'uchar' })
    .toBuffer({ resolveWithObject: true }))
  if (info.width !== image.width || info.height !== image.height || info.channels !== outChannels) {
    throw new Error(`internal: sharp returned ${info.width}x${info.height}x${info.channels}, expected ${image.width}x${image.height}x${outChannels}`)
  }
  return { width: image.width, height: image.height, channels: outChannels, depth: image.depth, data }
}

/** Grey to RGB by repeating the sample, for colour operations on grey input. */
export function greyToRgb (image: RawImage): RawImage {
  if (image.channels === 3) return image
  const out = allocRawUnsafe(image.width, image.height, { channels: 3, depth: image.depth })
  const src = samples(image)
  const dst = samples(out)
  for (let i = 0; i < src.length; i++) {
    dst[3 * i] = src[i]!
    dst[3 * i + 1] = src[i]!
    dst[3 * i + 2] = src[i]!
  }
  return withSamples(out, dst)
}


/** Applies a per-sample lookup table (256 or 65536 entries). */
export function applyLut (image: RawImage, lut: (v: number) => number): RawImage {
  const max = image.depth === 16 ? 65535 : 255
  const table = image.depth === 16 ? new Uint16Array(65536) : new Uint8Array(256)
  for (let v = 0; v <= max; v++) table[v] = Math.min(max, Math.max(0, Math.round(lut(v))))
  const src = samples(image)
  const out = allocRawUnsafe(image.width, image.height, image)
  const dst = samples(out)
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]!]!
  return withSamples(out, dst)
}
