/**
 * tileswarm as a library: send an image (a file or its bytes), or a batch of
 * them, to a swarm, with progress events, and get the result; or process
 * one here, the reference the swarm is held to (src/library.ts).
 *
 * An old Node is refused first, in one line: the library is loaded only
 * after the check, as an old Node cannot parse it.
 */
import { oldNodeProblem } from './node-check.ts'

const problem = oldNodeProblem()
if (problem !== undefined) throw new Error(`tileswarm ${problem}`)

export const {
  submit,
  submitBatch,
  runLocalBatch,
  BATCH_INCOMPLETE_EXIT,
  planBatch,
  runLocal,
  parseOps,
  resolvePipeline,
  describeOperations,
  OUTPUT_FORMATS,
  PRIORITIES,
  TileswarmError,
} = await import('./library.ts')

/** Every error tileswarm throws for a reason a user can act on (its `name` says which). */
export type TileswarmError = import('./library.ts').TileswarmError
export type { SubmitOptions, BatchEvent, BatchSummary, BatchRequest, BatchPlan, BatchItem, LocalResult, OutputFormat, Step, Priority, SubmitEvent, SubmitOutcome, SwarmSubmitOptions } from './library.ts'
