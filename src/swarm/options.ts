import { availableParallelism } from 'node:os'
import type { PrivateKey } from '@libp2p/interface'
import type { NodeOptions } from '../net/node.ts'
import { systemClock, type Clock } from '../common/clock.ts'
import { DEFAULT_ANNOUNCE_MS, DEFAULT_HELLO_MS, DEFAULT_INPUT_MEMORY_BYTES, DEFAULT_LEASE_MS, DEFAULT_MAX_JOBS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_TILES, DEFAULT_MAX_UPLOAD_BYTES } from '../common/defaults.ts'
import type { ImageProcessor } from '../worker/batch-lane.ts'
import type { TileProcessor } from '../worker/tile-lane.ts'
import type { InputDecoder } from '../job/inputs.ts'
import type { SpreadPolicy } from '../job/spread-policy.ts'
import { framedChannel, type OpenChannel } from './channels.ts'
import type { Log } from '../common/log.ts'
import type { PaceRule } from '../common/upload-pace.ts'
import type { ScaleOptions } from './scaler.ts'
import type { DiscoveryOptions } from './discovery.ts'
import type { SubmitServiceOptions } from './submit-service.ts'

/** What a peer is started with: its flags, and the components a test or the simulator may swap. Defaults: src/common/defaults.ts. */
export interface PeerOptions {
  listen: string[]
  bootstrap: string[]
  /** Addresses to tell others instead of the listening ones (--announce, for a VM behind NAT). */
  announce?: string[]
  /** Keeps the identity key; without it the peer id is new each start. */
  dataDir?: string
  privateKey?: PrivateKey
  slots?: number
  tileSize?: number
  leaseMs?: number
  maxPixels?: number
  maxUploadBytes?: number
  maxJobs?: number
  maxTiles?: number
  heartbeatMs?: number
  announceMs?: number
  helloMs?: number
  parkMs?: number
  dialTimeoutMs?: number
  redialFirstMs?: number
  redialMaxMs?: number
  /** A peer that has found no other this long after it starts warns that jobs run on it alone. */
  aloneWarnMs?: number
  uploadIdleMs?: number
  /** How fast a submission's upload must come. */
  uploadPace?: PaceRule
  /** What the worker keeps of results it computed for other coordinators, for a later coordinator of the same job. */
  resultCacheBytes?: number
  resultCacheMs?: number
  /** Decoded inputs of the jobs this peer coordinates, at most, across jobs. */
  inputMemoryBytes?: number
  /** The pre-shared key of a private swarm (libp2p pnet). */
  swarmKey?: Uint8Array
  /** Peer ids allowed to submit jobs here; everyone in the swarm when unset. */
  allowSubmit?: Set<string>
  /** The operator's token (the web page's, --http-token): whoever gives it may cancel any job coordinated here. */
  operatorToken?: string
  /** Who may submit high-priority jobs here: all, these peer ids, or (unset) those on allowSubmit (nobody without it). */
  allowPriority?: Set<string> | 'all'
  /** Hooks that add peers when work waits and stop them when the swarm is idle. */
  scale?: ScaleOptions
  /** The peer whose scale-out hook started this one (said in hellos, so that peer's scale-in may stop this one). */
  scaledBy?: string
  log?: Log
  /** Components: time, randomness, compute (decoding a job's input, a tile), how streams become channels, who may connect. */
  clock?: Clock
  random?: () => number
  decodeInput?: InputDecoder
  process?: TileProcessor
  /** A batch's image, processed whole. */
  processImage?: ImageProcessor
  /** A job nobody could share runs as one sharp pipeline (default); off where compute is modelled, which that pipeline would bypass. */
  /** `auto` (default): a job runs as one pipeline here unless spreading it pays; `always` (and with a scale-out hook, whose peers are on their way): every job is tiled across the swarm. */
  spread?: SpreadPolicy
  openChannel?: OpenChannel
  connectionGater?: NodeOptions['connectionGater']
}

export interface SharedSettings { log: Log, clock: Clock, openChannel: OpenChannel, slots: number, leaseMs: number, maxUploadBytes: number, maxPixels: number, announceMs: number }

/** The settings more than one of a peer's parts reads, defaults filled in. */
export function sharedSettings (options: PeerOptions): SharedSettings {
  return {
    log: options.log ?? (() => {}),
    clock: options.clock ?? systemClock,
    openChannel: options.openChannel ?? framedChannel,
    slots: options.slots ?? availableParallelism(),
    leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS,
    maxUploadBytes: options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES,
    maxPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS,
    announceMs: options.announceMs ?? DEFAULT_ANNOUNCE_MS,
  }
}

/** How the peer finds the swarm and stays in it. */
export function discoveryOptions (options: PeerOptions, shared: SharedSettings): DiscoveryOptions {
  return {
    bootstrap: options.bootstrap,
    slots: shared.slots,
    helloMs: options.helloMs ?? DEFAULT_HELLO_MS,
    dialTimeoutMs: options.dialTimeoutMs,
    redialFirstMs: options.redialFirstMs,
    redialMaxMs: options.redialMaxMs,
    aloneWarnMs: options.aloneWarnMs,
    scaler: options.scale?.out !== undefined,
    scaledBy: options.scaledBy,
  }
}

/** What the peer takes on as a coordinator. */
export function submitOptions (options: PeerOptions, shared: SharedSettings): SubmitServiceOptions {
  return {
    ...(options.tileSize !== undefined ? { tileSize: options.tileSize } : {}),
    maxJobs: options.maxJobs ?? DEFAULT_MAX_JOBS,
    maxUploadBytes: shared.maxUploadBytes,
    maxPixels: shared.maxPixels,
    maxTiles: options.maxTiles ?? DEFAULT_MAX_TILES,
    inputMemoryBytes: options.inputMemoryBytes ?? DEFAULT_INPUT_MEMORY_BYTES,
    leaseMs: shared.leaseMs,
    parkMs: options.parkMs,
    announceMs: shared.announceMs,
    allowSubmit: options.allowSubmit,
    ...(options.allowPriority !== undefined ? { allowPriority: options.allowPriority } : {}),
    uploadIdleMs: options.uploadIdleMs,
    ...(options.uploadPace !== undefined ? { uploadPace: options.uploadPace } : {}),
  }
}
