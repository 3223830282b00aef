import { Command, Option } from 'commander'
import { integerOption } from './args.ts'
import { DEFAULT_LEASE_MS, DEFAULT_MAX_JOBS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_TILES, DEFAULT_MAX_UPLOAD_BYTES, MAX_TILE_SIZE, MIN_TILE_SIZE } from '../common/defaults.ts'
import { SPREAD_POLICIES, type SpreadPolicy } from '../job/spread-policy.ts'
import type { PeerOptions } from '../swarm/options.ts'

/** A peer's flags for the jobs it coordinates: their tiles, whether they are spread, their leases and limits. */
export interface CoordinatingFlags {
  tileSize?: number
  spread: SpreadPolicy
  leaseMs: number
  maxPixels: number
  maxUploadBytes: number
  maxJobs: number
  maxTiles: number
}

/** Adds the flags to the peer command, in their place in its help. */
export function coordinatingOptions (command: Command): Command {
  return command
    .option('--tile-size <px>', 'tile edge for jobs coordinated here (default: chosen per job from its image and the swarm\'s slots, about a megapixel, 256 to 1024 px)', integerOption('--tile-size', MIN_TILE_SIZE, MAX_TILE_SIZE))
    .addOption(new Option('--spread <when>', 'auto: a job is tiled across the swarm only where the cost model says that finishes it a tenth sooner or more, else it runs as one pipeline here (as submit --local would); always: every job is tiled across the swarm (as with --scale-out, whose peers are on their way)').choices(SPREAD_POLICIES).default('auto'))
    .option('--lease-ms <ms>', 'a tile not delivered or renewed this long after its grant goes to another peer', integerOption('--lease-ms', 100, 3_600_000), DEFAULT_LEASE_MS)
    .option('--max-pixels <n>', 'refuse submitted images with more pixels', integerOption('--max-pixels'), DEFAULT_MAX_PIXELS)
    .option('--max-upload-bytes <n>', 'refuse larger submitted files', integerOption('--max-upload-bytes'), DEFAULT_MAX_UPLOAD_BYTES)
    .option('--max-jobs <n>', 'jobs coordinated here at once', integerOption('--max-jobs', 1, 1000), DEFAULT_MAX_JOBS)
    .option('--max-tiles <n>', 'tiles in one job coordinated here', integerOption('--max-tiles', 1, 10_000_000), DEFAULT_MAX_TILES)
}

/** What the flags set of the peer's options. */
export function coordinatingSettings (opts: CoordinatingFlags): Pick<PeerOptions, 'tileSize' | 'spread' | 'leaseMs' | 'maxPixels' | 'maxUploadBytes' | 'maxJobs' | 'maxTiles'> {
  return {
    ...(opts.tileSize !== undefined ? { tileSize: opts.tileSize } : {}),
    spread: opts.spread,
    leaseMs: opts.leaseMs,
    maxPixels: opts.maxPixels,
    maxUploadBytes: opts.maxUploadBytes,
    maxJobs: opts.maxJobs,
    maxTiles: opts.maxTiles,
  }
}

/** The flags in the peer's start-up line. */
export function coordinatingSummary (opts: CoordinatingFlags): string {
  return `tiles of ${opts.tileSize !== undefined ? `${opts.tileSize} px` : 'a size chosen per job'}, spread ${opts.spread}, leases of ${opts.leaseMs} ms`
}
