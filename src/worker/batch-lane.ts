import { MAX_TILE_BODY_BYTES } from '../common/defaults.ts'
import { ProtocolError, oneLine } from '../common/errors.ts'
import { processFile, type Gate, type ProcessedFile, type Step } from '../imaging/index.ts'
import { tileChecksum } from '../protocol/checksum.ts'
import type { WorkerLimits } from './admission.ts'
import { claimLoop, type LaneContext, type LaneEnd, type UnitStatus } from './claim-loop.ts'
import type { CoordinatorLink, GrantedTask } from './coordinator-link.ts'
import { isThisPeersTrouble } from './failure.ts'
import type { BatchSession } from './job-session.ts'

/** Processes a batch's image whole, its compute passing through `gate`; the simulator swaps in a cost model. */
export type ImageProcessor = (file: Uint8Array, steps: readonly Step[], options: Parameters<typeof processFile>[2], gate: Gate) => Promise<ProcessedFile>

/** sharp's, under one permit for the whole image: its decode, operation and encode are one libvips pipeline, or a few passes in a row. */
export const gatedImageProcessor: ImageProcessor = async (file, steps, options, gate) => await gate(async () => await processFile(file, steps, options))

export interface BatchLaneContext extends LaneContext {
  processImage: ImageProcessor
  limits: WorkerLimits
}

interface ImageResult {
  data: Buffer
  checksum: string
  size?: { width: number, height: number } | undefined
}

/**
 * A lane on a batch: an image processed whole (or the output kept from an
 * earlier coordinator), its output sent. An image that fails here is
 * reported and the lane goes on.
 */
export async function batchLane ({ link }: BatchSession, lane: BatchLaneContext): Promise<LaneEnd> {
  const remote = link.ref.coordinator !== lane.peerId
  return await claimLoop(link, lane, async reply => {
    if (reply.kind !== 'task') throw new ProtocolError('a batch granted a tile')
    return await doImage(link, reply.task, lane)
  // A whole image is seconds of work: this peer's own worker, whose claims cost nothing, holds none in reserve that another peer could be doing.
  }, { prefetch: remote })
}

async function doImage (link: CoordinatorLink, task: GrantedTask, lane: BatchLaneContext): Promise<UnitStatus> {
  // Kept from any earlier coordinator of the batch (this peer's own, too: a batch submitted again).
  const kept = lane.cache?.get(task.key, 0)
  const output = kept ?? await computeImage(link, task, lane)
  if (output === undefined) return undefined
  if (lane.signal.aborted) return undefined
  lane.keeper.settle(task.leaseId)
  // Kept without its size (never, as kept here): computed again rather than sent unsized.
  if (output.size === undefined) throw new ProtocolError(`a kept output of image ${task.slot} has no size`)
  return await link.output({ slot: task.slot, leaseId: task.leaseId, checksum: output.checksum, body: output.data, size: output.size, kept: kept !== undefined })
}

/** The image's output, kept for a later coordinator (off this peer); undefined if it failed here, reported. */
async function computeImage (link: CoordinatorLink, task: GrantedTask, lane: BatchLaneContext): Promise<ImageResult | undefined> {
  let output: ImageResult
  try {
    const processed = await lane.processImage(task.file, link.steps, { format: task.format, quality: link.batch!.quality, strip: link.batch!.strip === true, maxPixels: lane.limits.maxPixels, maxRawBytes: MAX_TILE_BODY_BYTES }, lane.gate)
    output = { data: processed.data, checksum: tileChecksum(processed.data), size: { width: processed.width, height: processed.height } }
  } catch (err) {
    lane.keeper.settle(task.leaseId)
    // Past this peer's limits, or its memory: another peer may do it.
    await link.reportFailure(oneLine((err as Error).message), { tile: task.slot, handOn: isThisPeersTrouble(err) }).catch(() => {})
    return undefined
  }
  const { cache } = lane
  if (cache !== undefined && link.ref.coordinator !== lane.peerId) cache.put(task.key, 0, output.checksum, output.data, { size: output.size })
  return output
}
