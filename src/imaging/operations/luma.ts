import { allocRawUnsafe, samples, withSamples, type RawImage } from '../pixels/raw.ts'
import { sharpPass } from '../pixels/sharp-pass.ts'

/**
 * The two greys the operations use. `toGrey` is sharp's greyscale
 * (colour-managed luminance): what greyscale, the edge maps and threshold
 * show. `bt601` is OpenCV's integer luma: what Canny and the histogram steps
 * compute on, so their results match OpenCV's to the sample.
 */

/** Luminance, as sharp's greyscale computes it (grey stays as it is). */
export async function toGrey (image: RawImage): Promise<RawImage> {
  return image.channels === 1 ? image : await sharpPass(image, s => s.greyscale(), 1)
}

/** BT.601 luma of an RGB sample, in OpenCV 4's 15-bit fixed point (cv::cvtColor RGB2GRAY): the same integers. */
export function bt601 (r: number, g: number, b: number): number {
  return (r * 9798 + g * 19235 + b * 3735 + 16384) >>> 15
}

/** The BT.601 luma image (grey stays as it is), on the image's own depth. */
export function bt601Image (image: RawImage): RawImage {
  if (image.channels === 1) return image
  const grey = allocRawUnsafe(image.width, image.height, { channels: 1, depth: image.depth })
  const src = samples(image)
  const dst = samples(grey)
  for (let i = 0, j = 0; j < dst.length; i += 3, j++) dst[j] = bt601(src[i]!, src[i + 1]!, src[i + 2]!)
  return withSamples(grey, dst)
}
