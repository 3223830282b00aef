import { bytesPerPixel, checkSummary, contextsOfTile, createPlanOutput, extract, maxSummaryBytes, phaseReducer, placeTile, planTiles, type JobPlan, type PixelFormat, type RawImage, type Reducer, type StepContext, type Tile } from '../imaging/index.ts'
import type { LeaseStats } from './leases.ts'

/** A global step's context for one tile: its own, or the one every tile shares. */
export interface TileContext {
  step: number
  data: Uint8Array
  shared: boolean
}

/** A phase's tiles and reduction, built aside before it is switched to. */
export interface PhaseBuild {
  phase: number
  tiles: Tile[]
  reducer: Reducer | undefined
}

/**
 * A job's phases (see JobPlan): the current phase's tiles, where their
 * results go (the output, or the phase's reduction), the contexts reduced
 * so far, and who is counted for each tile.
 */
export class JobPhases {
  readonly plan: JobPlan
  readonly tileSize: number
  /** The current phase (0-based) and its tiles. */
  phase = 0
  tiles: Tile[]
  /** Phases started over (a liar's summaries were reduced): lease ids of each start are their own, and workers drop what they kept of the earlier start. */
  restarts = 0
  /** Each peer's tiles in the output (or this phase's reduction): counted for the peer whose result is there. */
  readonly tilesByPeer = new Map<string, number>()
  /** This phase's tiles done (not counting their extra computations). */
  tilesDone = 0
  private output: RawImage | undefined
  /** The current summary phase's reduction, fed each summary as it is accepted. */
  private reducer: Reducer | undefined
  /** Reduced global steps, by step index. */
  private readonly contexts = new Map<number, StepContext>()
  /** Who summarised each tile this phase; next phase, each peer is offered its own tiles first (its worker kept work for them). */
  private summarisedBy: string[] = []
  /** Who each tile of this phase is counted for in tilesByPeer. */
  private creditedTo: string[] = []
  /** This phase's tiles offered first to each peer (taken from the end). */
  affinity = new Map<string, number[]>()
  /** The lease counts of the phases before this one (of each start). */
  private readonly pastStats: LeaseStats[] = []

  constructor (plan: JobPlan, tileSize: number) {
    this.plan = plan
    this.tileSize = tileSize
    this.tiles = planTiles(plan.width, plan.height, tileSize, plan.phases[0]!.halo)
    if (plan.phases.length === 1) this.output = createPlanOutput(plan)
    else this.reducer = phaseReducer(plan, 0, this.tiles.map(t => t.core))
  }

  get summarising (): boolean { return this.plan.phases[this.phase]?.summarises !== undefined }
  get isLast (): boolean { return this.phase === this.plan.phases.length - 1 }
  get outputFormat (): PixelFormat { return this.plan.outputFormat }

  /** The finished output (once the last phase is done). */
  get result (): RawImage { return this.output! }

  /** Units done and in all, over every phase. */
  get progress (): { done: number, total: number } {
    return { done: this.phase * this.tiles.length + this.tilesDone, total: this.plan.phases.length * this.tiles.length }
  }

  /** Lease counts over every phase so far, the current one's `current`. */
  statsWith (current: LeaseStats): LeaseStats {
    const total = { ...current }
    for (const past of this.pastStats) for (const key of Object.keys(total) as Array<keyof LeaseStats>) total[key] += past[key]
    return total
  }

  /** A tile's result in raw bytes (0 for a tile that does not exist); a summary's, at most. */
  resultBytes (tileIndex: number): number {
    const tile = this.tiles[tileIndex]
    if (tile === undefined) return 0
    return this.summarising ? maxSummaryBytes(tile.core) : tile.core.width * tile.core.height * bytesPerPixel(this.outputFormat)
  }

  /** Why a tile's result cannot be right (its size, or a summary's shape); undefined if it may be. */
  wrongResult (tileIndex: number, body: Uint8Array): string | undefined {
    const tile = this.tiles[tileIndex]!
    if (this.summarising) {
      const wrong = checkSummary(this.plan, this.phase, tile.core, body)
      return wrong !== undefined ? `tile ${tileIndex}: ${wrong}` : undefined
    }
    const expected = this.resultBytes(tileIndex)
    return body.length !== expected ? `tile ${tileIndex} result is ${body.length} bytes, expected ${expected}` : undefined
  }

  /** A tile of this phase is done by `peer` (its first result, checked or not). */
  tileDone (tile: number, peer: string): void {
    this.tilesDone++
    if (this.summarising) this.summarisedBy[tile] = peer
    this.credit(tile, peer)
  }

  /** `peer`'s result is the tile's in the output: it is counted for it in tilesByPeer (no longer for the peer it replaced). */
  credit (tile: number, peer: string): void {
    const before = this.creditedTo[tile]
    if (before === peer) return
    if (before !== undefined) {
      const n = (this.tilesByPeer.get(before) ?? 1) - 1
      if (n > 0) this.tilesByPeer.set(before, n)
      else this.tilesByPeer.delete(before)
    }
    this.creditedTo[tile] = peer
    this.tilesByPeer.set(peer, (this.tilesByPeer.get(peer) ?? 0) + 1)
  }

  /** The tiles of a one-phase job's output whose result is `peer`'s, with their pixels (a copy): what it hands over if it leaves mid-job. */
  placedBy (peer: string): Array<{ tile: number, data: Buffer }> {
    if (this.plan.phases.length !== 1 || this.output === undefined) return []
    const out: Array<{ tile: number, data: Buffer }> = []
    for (const [tile, by] of this.creditedTo.entries()) if (by === peer) out.push({ tile, data: Buffer.from(extract(this.output, this.tiles[tile]!.core).data) })
    return out
  }

  /** A result into the output (pixels) or the phase's reduction (a summary, which the reducer may keep: unless `owned`, the body's memory is the session's). */
  take (tile: number, body: Uint8Array, options: { owned?: boolean } = {}): void {
    if (this.summarising) this.reducer!.add(tile, options.owned === true && Buffer.isBuffer(body) ? body : Buffer.from(body))
    else {
      const t = this.tiles[tile]!
      placeTile(this.output!, t, { width: t.core.width, height: t.core.height, ...this.outputFormat, data: Buffer.from(body.buffer, body.byteOffset, body.length) })
    }
  }

  /** The contexts a tile of the current phase is applied with. */
  contextsFor (tileIndex: number): TileContext[] {
    return [...contextsOfTile(this.contexts, tileIndex)].map(([step, data]) => ({ step, data, shared: 'shared' in this.contexts.get(step)! }))
  }

  /** The summaries are in: their context for the phases after (throws if the reduction fails). Each peer is offered its own tiles first next. */
  reduce (): Map<string, number[]> {
    this.contexts.set(this.plan.phases[this.phase]!.end, this.reducer!.finish())
    const affinity = new Map<string, number[]>()
    for (const [tile, peer] of this.summarisedBy.entries()) {
      const mine = affinity.get(peer) ?? []
      mine.push(tile)
      affinity.set(peer, mine)
    }
    // Taken from the end, one claim at a time: lowest tile first, as before.
    for (const mine of affinity.values()) mine.reverse()
    return affinity
  }

  /** The phases from `phase` on start over: what a liar summarised went into their contexts. */
  restartFrom (phase: number): void {
    for (const p of this.plan.phases.slice(phase)) if (p.summarises !== undefined) this.contexts.delete(p.end)
    this.restarts++
    this.output = undefined
  }

  /** A phase's tiles and reduction, and the output it writes (throws where an allocation fails: no half-switched phase). */
  build (phase: number): PhaseBuild {
    const next = this.plan.phases[phase]!
    const tiles = planTiles(this.plan.width, this.plan.height, this.tileSize, next.halo)
    const reducer = next.summarises !== undefined ? phaseReducer(this.plan, phase, tiles.map(t => t.core)) : undefined
    if (next.summarises === undefined) this.output ??= createPlanOutput(this.plan)
    return { phase, tiles, reducer }
  }

  /** Switches to a phase built aside; `pastStats`: the lease counts of the one it ends. */
  enter (build: PhaseBuild, options: { affinity: Map<string, number[]>, pastStats: LeaseStats }): void {
    this.pastStats.push(options.pastStats)
    this.reducer = build.reducer
    this.affinity = options.affinity
    this.summarisedBy = []
    this.phase = build.phase
    this.tiles = build.tiles
    this.tilesDone = 0
    this.creditedTo = []
  }
}
