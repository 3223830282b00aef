import type { Safekeeping, ToOffer } from './held-results.ts'
import type { Clock } from '../common/clock.ts'
import type { Step, Tile } from '../imaging/index.ts'
import type { InputShape } from './inputs.ts'
import type { Lease, SpeculationPolicy } from './leases.ts'
import type { Exclusion, SpotCheckOptions } from './spot-checks.ts'
import type { TilePixelSource } from './tile-pixels.ts'
import type { VerifyFigures } from '../protocol/verify-level.ts'

// What a tiled job (see JobCoordinator) is given, what its claims come to, and what it tells.

export interface JobOptions {
  jobId: string
  /** The job's content identity (input, pipeline, tile geometry): workers keep results under it. */
  jobKey: string
  /** This peer: its own worker's results are trusted, and it takes its tiles' pixels in memory. */
  self?: string
  /** What the input decodes to. */
  shape: InputShape
  /** The tiles' input pixels, which go out with their grants. */
  pixels: TilePixelSource
  steps: Step[]
  tileSize: number
  leaseMs: number
  clock?: Clock
  /** How long a claim waits for a tile to come back before it is told to wait. */
  parkMs?: number
  /** When to grant a second copy of a straggler's tile; never, if unset. */
  speculation?: SpeculationPolicy
  /**
   * A resumed job: these peers hold tiles an earlier coordinator finished.
   * No tile is handed out to compute until each has joined (and offered what
   * it holds) or the window has passed, so none is computed twice. The
   * coordinator's own worker is a holder too, and counts among them.
   */
  collect?: { holders: string[], windowMs: number }
  /**
   * Spot checks: how much is computed twice, and this peer's record of the
   * others (kept for its lifetime). `random` picks the results checked. None if unset.
   */
  verify?: SpotCheckOptions
}

export interface GrantedTile {
  lease: Lease
  tile: Tile
  phase: number
}

/** `offers`: a resumed job's holder is to offer these tiles it kept before it claims again; `keep`: the worker is to keep the coordinator's own summaries. */
export type ClaimOutcome = { kind: 'grant', grant: GrantedTile } | { kind: 'offers', offer: ToOffer } | { kind: 'keep', keep: Safekeeping } | { kind: 'done' } | { kind: 'wait' } | { kind: 'cancelled' } | { kind: 'excluded' }

export interface JobEvents {
  progress: (done: number, total: number) => void
  /** A tile's result was accepted: its pixels placed in the output, or its summary taken (once per tile and phase, ever). */
  placed: (tile: number, peer: string) => void
  /** Tiles went back to the pool and no claim was waiting: tell the swarm. */
  tilesReturned: (count: number) => void
  /** A resumed job has collected what its holders offered: this many tiles of the total. */
  recovered: (tiles: number, total: number, phase: number) => void
  /** A summary phase is reduced; phase `phase` (0-based) of `phases` starts. */
  phase: (phase: number, phases: number, reduceMs: number) => void
  /** A check settled a tile, or found a disagreement: the figures changed. */
  verified: (figures: VerifyFigures) => void
  /**
   * A peer's result lost a vote (or it was caught before, in another job):
   * it gets no more of this job, and what it delivered on its word alone is
   * done again: `redo` tiles, or every phase from `restartPhase` (its
   * summaries went into a reduction).
   */
  excluded: (peer: string, why: Exclusion) => void
}
