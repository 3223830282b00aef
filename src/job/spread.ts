import { bytesPerPixel, type JobPlan, type OutputFormat } from '../imaging/index.ts'
import type { CostModel } from './costs.ts'
import type { TrustRecords } from './verify.ts'
import type { VerifyLevel } from '../protocol/verify-level.ts'

import type { SpreadPolicy } from './spread-policy.ts'


/**
 * Moving a remote tile's pixels out and its result back, per byte of raw
 * pixels, at each end: libp2p's streams (yamux, Noise), the checksums, the
 * cut and the placement. Measured with `npm run bench` (the peers'
 * JavaScript threads on a 2-peer median: about 24 ns a byte, both ends).
 */
const SHIP_NS_PER_BYTE = 12
/** Tiles' libvips passes took this much more CPU than one pass over the image in `npm run bench` (halos, set-up, caches). */
const TILE_OVERHEAD = 0.3
/** A spread job's latency before the second slot starts (a claim, its grant, the session): a few round trips. */
const SPREAD_LATENCY_NS = 30e6
/** Spreading must save at least this share of the time: a margin for the model's error, as spreading costs CPU one pipeline does not spend. */
const MIN_GAIN = 0.1
/** Tiles per slot the tile size aims for: enough to balance peers of unequal speed, and to lose little to a failure. */
const TILES_PER_SLOT = 4
export const AUTO_TILE = { min: 256, max: 1024, step: 64 }

/** The swarm a job would be spread over, as its coordinator sees it now. */
export interface SwarmShape {
  /** This peer's slots, and the swarm's (this peer's and its connected peers'). */
  here: number
  total: number
  /** Every other peer is on this machine (loopback): they share its cores, and moving pixels takes CPU from the work itself. */
  colocated: boolean
  cores: number
  /** The extra computations spot checks would add, as a share of the job's tiles (other peers' records as they stand). */
  checkShare: number
}

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

/** The peers a coordinator could spread a job over: its own slots, and each connected peer's (on this machine or not). */
export interface SwarmView {
  here: number
  cores: number
  peers: Array<{ peerId: string, slots: number, local: boolean }>
}

/** Every slot the view names: this peer's and its connected peers'. */
export function swarmSlots (view: SwarmView): number {
  return view.here + view.peers.reduce((n, p) => n + p.slots, 0)
}

/** The swarm's shape for a job of `tiles` tiles: its slots, whether it is all on this machine, and what checks would add. */
export function swarmShape (view: SwarmView, tiles: number, trust: TrustRecords, level: VerifyLevel): SwarmShape {
  const total = swarmSlots(view)
  // Each peer's share of the tiles, by its slots; the checks its record calls for on that many results.
  const checks = view.peers.reduce((n, p) => n + trust.expectedChecks(p.peerId, level, tiles * p.slots / total), 0)
  return { here: view.here, total, colocated: view.peers.every(p => p.local), cores: view.cores, checkShare: checks / Math.max(1, tiles) }
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
export async function decideSpread (costs: Pick<CostModel, 'compute' | 'decode' | 'encode'>, job: { plan: JobPlan, inputPixels: number, container: string, format: OutputFormat }, swarm: SwarmShape, policy: SpreadPolicy): Promise<SpreadDecision> {
  const { plan } = job
  const pixels = plan.width * plan.height
  const compute = await costs.compute(plan.steps, plan.format) * pixels
  const serial = costs.decode(job.container) * job.inputPixels + costs.encode(job.format) * pixels
  const wholeNs = serial + compute
  const slots = Math.max(1, swarm.total)
  const remoteShare = (slots - Math.min(slots, swarm.here)) / slots
  // Each phase of a job in phases computes its tiles again from their pixels, which travel again: at most this many times the work.
  const phases = plan.phases.length
  const tiledCompute = compute * phases * (1 + TILE_OVERHEAD) * (1 + swarm.checkShare)
  const shipNs = SHIP_NS_PER_BYTE * pixels * (bytesPerPixel(plan.format) + bytesPerPixel(plan.outputFormat)) / 2 * remoteShare * phases
  const spreadNs = swarm.colocated
    // One machine's cores do it all: the work, and both ends of every pixel's trip.
    ? (tiledCompute + 2 * shipNs) / Math.min(slots, Math.max(1, swarm.cores))
    // Machines of their own: the coordinator's moving of pixels runs beside the work.
    : Math.max(tiledCompute / slots, shipNs)
  const tilesNs = serial + spreadNs + (slots > 1 ? SPREAD_LATENCY_NS : 0)
  const figures = { wholeS: wholeNs / 1e9, tilesS: tilesNs / 1e9, slots }
  const says = `${figures.tilesS.toFixed(2)} s on ${slots} slot${slots === 1 ? '' : 's'} against ${figures.wholeS.toFixed(2)} s as one pipeline`
  if (policy === 'always') return { mode: 'tiles', ...figures, reason: `spread as this peer is told (--spread always): ${says}` }
  if (slots > 1 && tilesNs <= (1 - MIN_GAIN) * wholeNs) return { mode: 'tiles', ...figures, reason: `spread: ${says}` }
  return { mode: 'whole', ...figures, reason: slots > 1 ? `one pipeline here: spreading would not pay (${says})` : 'one pipeline here: no other peer to share it with' }
}
