import { decodeImage, encodeImage, readImageHeader, wholeImagePipeline, type EncodeOptions } from './codec.ts'
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
export async function processFile (file: Uint8Array, steps: readonly Step[], options: EncodeOptions & { maxPixels: number }): Promise<ProcessedFile> {
  const header = await readImageHeader(file, { maxPixels: options.maxPixels })
  const streamed = wholeImagePipeline(file, header, steps, options)
  if (streamed !== undefined) return { data: await streamed, width: header.width, height: header.height }
  const { image } = await decodeImage(file, { maxPixels: options.maxPixels })
  const out = await runPipeline(image, steps)
  const data = await encodeImage(out, options)
  return { data, width: out.width, height: out.height }
}
