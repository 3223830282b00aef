import { LimitExceededError } from '../common/errors.ts'
import { bytesPerPixel, planJob, readImageHeader, tileCount, type ImageHeader, type JobPlan, type Step } from '../imaging/index.ts'
import type { JobHostComponents, JobLimits } from './hosted.ts'
import { inputDigest, type InputHold, type InputShape } from './inputs.ts'
import { autoTileSize, swarmSlots, type SwarmView } from './spread.ts'

/** A tiled job taken in: its input read, planned within this peer's limits, and held. */
export interface AdmittedJob {
  header: ImageHeader
  shape: InputShape
  plan: JobPlan
  /** The swarm as it was seen when the tile size was chosen. */
  view: SwarmView
  tileSize: number
  tiles: number
  /** The input's digest; with '+icc' where it decodes to its file's colours. */
  sha256: string
  input: InputHold
}

/**
 * Takes a tiled job's upload in, or refuses it: its header read, its plan
 * within --max-pixels and --max-tiles, its decoded input within
 * --input-memory-mb. Nothing is held for a job that is refused.
 */
export async function takeInTiledJob (upload: Buffer, spec: { steps: Step[], tileSize?: number, strip?: boolean }, limits: JobLimits, c: Pick<JobHostComponents, 'swarm' | 'inputs'>): Promise<AdmittedJob> {
  const header = await readImageHeader(upload, { maxPixels: limits.maxPixels, strip: spec.strip === true })
  // Its profile kept, an input decodes to its file's colours, not sRGB: other pixels, another input here.
  const shape = { width: header.width, height: header.height, format: header.format, ...(header.metadata.icc !== undefined ? { fileColours: true } : {}) }
  // Planned before anything is held for it: a crop outside the image, or a resize past the limits, is refused.
  const plan = planJob(spec.steps, shape)
  if (plan.largestPixels > limits.maxPixels) {
    throw new LimitExceededError(`${[...new Set(plan.prelude.map(s => s.operation.name))].join(', ')} would make an image of ${(plan.largestPixels / 1e6).toFixed(1)} MP: over this peer's limit of ${(limits.maxPixels / 1e6).toFixed(1)} MP (--max-pixels)`)
  }
  const view = c.swarm()
  const tileSize = spec.tileSize ?? autoTileSize(plan.width, plan.height, swarmSlots(view))
  const tiles = tileCount(plan.width, plan.height, tileSize)
  if (tiles > limits.maxTiles) {
    throw new LimitExceededError(`${tiles} tiles of ${tileSize} px is over this peer's limit of ${limits.maxTiles} (--max-tiles); use a larger tile size`)
  }
  // Hashed here: a client's word for it could poison workers' kept results.
  const sha256 = inputDigest(upload) + (shape.fileColours === true ? '+icc' : '')
  // A prelude (geometry on the whole image) holds its result too, and one image between while it runs.
  const preludeBytes = Math.min(plan.prelude.length, 2) * plan.largestPixels * Math.max(bytesPerPixel(header.format), bytesPerPixel(plan.format))
  if (limits.inputMemoryBytes !== undefined) c.inputs.checkRoom(sha256, shape, limits.inputMemoryBytes, preludeBytes)
  // Held (and counted against --input-memory-mb) whichever way it runs.
  const input = c.inputs.hold(sha256, upload, shape)
  return { header, shape, plan, view, tileSize, tiles, sha256, input }
}
