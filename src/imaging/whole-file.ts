import { InvalidImageError, LimitExceededError } from '../common/errors.ts'
import { decodeImage, encodeImage, readImageHeader, wholeImagePipeline, type EncodeOptions } from './codec.ts'
import { planJob } from './phases.ts'
import { bytesPerPixel } from './pixels/raw.ts'
import { runPipeline, type Step } from './pipeline.ts'

/** An image file processed whole: what a batch's task is. */
export interface ProcessedFile {
  data: Buffer
  width: number
  height: number
}

/**
 * A whole image file in, its encoded output out: the bytes `submit --local`
 * writes (decode, pipeline, encode), by one streamed libvips pipeline where
 * there is one that gives the same bytes (see wholeImagePipeline).
 */
export async function processFile (file: Uint8Array, steps: readonly Step[], options: EncodeOptions & { maxPixels: number, maxRawBytes: number, strip?: boolean }): Promise<ProcessedFile> {
  const header = await readImageHeader(file, { maxPixels: options.maxPixels, strip: options.strip === true })
  // Planned as a tiled job would be, before a pixel is decoded: a crop outside the image, or a resize past the limits, is refused.
  const plan = planJob([...steps], { width: header.width, height: header.height, format: header.format })
  if (plan.largestPixels > options.maxPixels) throw new LimitExceededError(`the pipeline would make an image of ${(plan.largestPixels / 1e6).toFixed(1)} MP from it: over the limit of ${(options.maxPixels / 1e6).toFixed(1)} MP (--max-pixels)`)
  const raw = Math.max(header.width * header.height, plan.largestPixels) * Math.max(bytesPerPixel(header.format), bytesPerPixel(plan.outputFormat))
  // The same on every peer: not handed on, but failed.
  if (raw > options.maxRawBytes) throw new InvalidImageError(`an image of ${header.width}x${header.height} is too large to go whole to one peer (${Math.round(raw / 1024 / 1024)} MB raw); submit it alone, or lower --tile-above-mp, to have it tiled`)
  const streamed = wholeImagePipeline(file, header, steps, options)
  if (streamed !== undefined) return { data: await streamed, width: header.width, height: header.height }
  const { image, metadata } = await decodeImage(file, { maxPixels: options.maxPixels, strip: options.strip === true })
  const out = await runPipeline(image, steps)
  const data = await encodeImage(out, { format: options.format, ...(options.quality !== undefined ? { quality: options.quality } : {}), metadata })
  return { data, width: out.width, height: out.height }
}
