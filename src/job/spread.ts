import { bytesPerPixel, type JobPlan, type OutputFormat } from '../imaging/index.ts'
import type { CostModel } from './costs.ts'

import type { SpreadPolicy } from './spread-policy.ts'

export type { SpreadPolicy } from './spread-policy.ts'

/**
 * Moving a pixel between two peers and back, per byte of raw pixels, on the
 * coordinator's main thread: libp2p's streams (yamux, Noise) cost about
 * 5 ns a byte each way here, and a remote tile's pixels go out and its
 * result comes back. Measured with `npm run bench`.
 */
const SHIP_NS_PER_BYTE = 10
/** A tile pass costs this much more than the same pixels in one pass (halos, set-up), at the tile sizes chosen here. */
const TILE_OVERHEAD = 0.05
/** A spread job's latency before the second slot starts (a claim, its grant, the session): a few round trips. */
const SPREAD_LATENCY_NS = 30e6
/** Spreading must save at least this share of the time: it costs CPU the whole pipeline does not spend. */
const MIN_GAIN = 0.2
/** Tiles per slot the tile size aims for: enough to balance peers of unequal speed, and to lose little to a failure. */
const TILES_PER_SLOT = 4
export const AUTO_TILE = { min: 256, max: 1024, step: 64 }

export interface SpreadDecision {
  /** One pipeline on this peer, or tiles across the swarm's slots. */
  mode: 'whole' | 'tiles'
  /** Seconds each way would take, as the model has it. */
  wholeS: number
  tilesS: number
  slots: number
  /** The reason, for the job's log line. */
  reason: string
}

/** Tiles of about a megapixel, fewer where the swarm has many slots for the image; a multiple of 64. */
export function autoTileSize (width: number, height: number, slots: number): number {
  const side = Math.sqrt(width * height / (TILES_PER_SLOT * Math.max(1, slots)))
  return Math.min(AUTO_TILE.max, Math.max(AUTO_TILE.min, Math.round(side / AUTO_TILE.step) * AUTO_TILE.step))
}

/**
 * Whether a job is worth spreading: the time of one pipeline here (decode,
 * steps, encode at one thread) against tiles over the swarm's slots (decode
 * and encode here, the steps shared, the coordinator moving the pixels of the
 * tiles other peers compute).
 * A job that would not finish sooner by a margin runs as one pipeline: more
 * peers never make it slower, and it costs the swarm no CPU for spreading.
 */
export async function decideSpread (costs: CostModel, job: { plan: JobPlan, inputPixels: number, container: string, format: OutputFormat }, swarm: { here: number, total: number }, policy: SpreadPolicy): Promise<SpreadDecision> {
  const { plan } = job
  const pixels = plan.width * plan.height
  const compute = await costs.compute(plan.steps, plan.format) * pixels
  const serial = costs.decode(job.container) * job.inputPixels + costs.encode(job.format) * pixels
  const wholeNs = serial + compute
  const slots = Math.max(1, swarm.total)
  const remoteShare = (slots - Math.min(slots, swarm.here)) / slots
  const shipNs = SHIP_NS_PER_BYTE * pixels * (bytesPerPixel(plan.format) + bytesPerPixel(plan.outputFormat)) / 2 * remoteShare
  const tilesNs = serial + Math.max(compute * (1 + TILE_OVERHEAD) / slots, shipNs) + (slots > 1 ? SPREAD_LATENCY_NS : 0)
  const figures = { wholeS: wholeNs / 1e9, tilesS: tilesNs / 1e9, slots }
  const says = `${figures.tilesS.toFixed(2)} s on ${slots} slot${slots === 1 ? '' : 's'} against ${figures.wholeS.toFixed(2)} s as one pipeline`
  if (policy === 'always') return { mode: 'tiles', ...figures, reason: `spread as this peer is told (--spread always): ${says}` }
  if (slots > 1 && tilesNs <= (1 - MIN_GAIN) * wholeNs) return { mode: 'tiles', ...figures, reason: `spread: ${says}` }
  return { mode: 'whole', ...figures, reason: slots > 1 ? `one pipeline here: spreading would not pay (${says})` : 'one pipeline here: no other peer to share it with' }
}
