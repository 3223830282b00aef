/**
 * What the library (src/index.ts) exports, loaded once the Node is known to
 * be new enough: send an image (a file or its bytes), or a batch of them, to
 * a swarm, with progress events, and get the result; or process one here,
 * the reference the swarm is held to.
 */
import { DEFAULT_QUALITY } from './common/defaults.ts'
import { InvalidParameterError } from './common/errors.ts'
import { formatFromPath, parseOps, resolvePipeline, type OutputFormat } from './imaging/index.ts'
import { submitToSwarm, type SubmitOutcome, type SwarmSubmitOptions } from './client/submit.ts'

export { submitBatch, runLocalBatch, BATCH_INCOMPLETE_EXIT } from './client/batch.ts'
export type { BatchEvent, BatchSummary, BatchRequest } from './client/batch-events.ts'
export { planBatch, type BatchPlan, type BatchItem } from './client/batch-plan.ts'
export { runLocal, type LocalResult } from './client/local.ts'
export { parseOps, resolvePipeline, describeOperations, type OutputFormat, type Step } from './imaging/index.ts'
export { OUTPUT_FORMATS, PRIORITIES, type Priority } from './protocol/constants.ts'
export { TileswarmError } from './common/errors.ts'
export type { SubmitEvent, SubmitOutcome, SwarmSubmitOptions } from './client/submit.ts'

export interface SubmitOptions extends Omit<SwarmSubmitOptions, 'node'> {
  /** The image: a file's path, or its bytes. */
  input: string | Uint8Array
  /** The pipeline, as `--ops` takes it: "blur:sigma=2,sobel". */
  ops: string
  /** Where to write the result as well; its extension picks the format unless `format` does. */
  output?: string
  /** The result's format: by default the output's extension, or PNG. */
  format?: OutputFormat
  quality?: number
  /** Drop the input's EXIF, ICC profile and XMP, which the output keeps by default. */
  strip?: boolean
}

/**
 * Sends one image to a swarm and waits for the result (its bytes come back
 * as `data`): the job `tileswarm submit --peer` runs, resumed elsewhere if
 * its coordinator is lost, with the same events (`onEvent`).
 */
export async function submit (options: SubmitOptions): Promise<SubmitOutcome> {
  const steps = resolvePipeline(parseOps(options.ops))
  const byPath = options.output !== undefined ? formatFromPath(options.output) : undefined
  if (options.format !== undefined && byPath !== undefined && byPath !== options.format) throw new InvalidParameterError(`format ${options.format} and the output's extension (${options.output}) disagree`)
  const format = options.format ?? byPath ?? 'png'
  return await submitToSwarm({ steps, input: options.input, ...(options.output !== undefined ? { output: options.output } : {}), format, quality: options.quality ?? DEFAULT_QUALITY, ...(options.strip === true ? { strip: true } : {}) }, options)
}
