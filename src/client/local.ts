import { sharpLib } from '../imaging/pixels/sharp-lib.ts'
import { DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_BYTES } from '../common/defaults.ts'
import { decodeImage, describePipeline, encodeImage, formatName, runPipeline } from '../imaging/index.ts'
import { OutputFile, readInput } from './files.ts'
import type { JobRequest } from './options.ts'


export interface LocalOptions {
  maxPixels?: number
  maxUploadBytes?: number
  /** libvips threads; sharp defaults to one on glibc Linux. */
  threads?: number
  log?: (line: string) => void
}

export interface LocalResult {
  width: number
  height: number
  bytes: number
  ms: number
  notes: string[]
}

/**
 * The whole image in this one process, no tiles: the reference the swarm is
 * held to, byte for byte.
 */
export async function runLocal (request: JobRequest, options: LocalOptions = {}): Promise<LocalResult> {
  const started = performance.now()
  if (options.threads !== undefined) sharpLib().concurrency(options.threads)
  const output = await OutputFile.create(request.output)
  try {
    const bytes = await readInput(request.input, options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES)
    await output.checkRoom(bytes, request.steps, request.format)
    const { image, notes, metadata } = await decodeImage(bytes, { maxPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS, strip: request.strip === true })
    for (const note of notes) options.log?.(`note: ${note}`)
    options.log?.(`processing ${image.width}x${image.height} ${formatName(image)} with ${describePipeline(request.steps)}`)
    const out = await runPipeline(image, request.steps)
    const encoded = await encodeImage(out, { format: request.format, quality: request.quality, metadata })
    await output.commit(encoded)
    return { width: out.width, height: out.height, bytes: encoded.length, ms: performance.now() - started, notes }
  } finally {
    await output.discard()
  }
}
