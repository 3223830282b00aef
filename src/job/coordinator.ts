import { tileChecksum } from '../protocol/checksum.ts'
import { bytesPerPixel, checkSummary, contextsOfTile, createPlanOutput, maxSummaryBytes, phaseReducer, planJob, planTiles, placeTile, toSpecs, type Reducer, type JobPlan, type PixelFormat, type RawImage, type Step, type StepContext, type Tile } from '../imaging/index.ts'
import type { InputShape } from './inputs.ts'
import type { TilePixelSource, TilePixelsOut } from './tile-pixels.ts'
import { systemClock, type Clock } from '../common/clock.ts'
import { DEFAULT_PARK_MS, OFFER_HOLD_MS } from '../common/defaults.ts'
import { JobFailedError } from '../common/errors.ts'
import { LeaseTable, type Lease, type LeaseStats, type SpeculationPolicy } from './leases.ts'
import { LeaseScheduler } from './scheduler.ts'
import { repeat } from '../common/clock.ts'
import { CHECK_WAIT_MS, MAX_VOTES, resultDigest, secureRandom, type TrustRecords } from './verify.ts'
import type { VerifyFigures, VerifyLevel } from '../protocol/verify-level.ts'
import type { JobInfo } from '../protocol/messages.ts'

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
  verify?: { level: VerifyLevel, records: TrustRecords, random?: () => number }
}

/** A tile under check this phase: who computed it and what they got; which result is in the output (or held for the reduction). */
interface OpenCheck {
  votes: Array<{ peer: string, digest: string | undefined }>
  /** The peer whose result is under check (its record counts the check as pending). */
  checking?: string
  /** The computation asked for now, and since when. */
  unit?: number
  openedAt?: number
  shown?: string
  held?: Buffer
}

export interface GrantedTile {
  lease: Lease
  tile: Tile
  phase: number
}

/** A global step's context for one tile: its own, or the one every tile shares. */
export interface TileContext {
  step: number
  data: Uint8Array
  shared: boolean
}

export type ClaimOutcome = { kind: 'grant', grant: GrantedTile } | { kind: 'done' } | { kind: 'wait' } | { kind: 'cancelled' } | { kind: 'excluded' }

export interface ResultOutcome {
  status: 'accepted' | 'duplicate' | 'rejected'
  reason?: string
}

export interface JobEvents {
  progress: (done: number, total: number) => void
  /** A tile's result was accepted: its pixels placed in the output, or its summary taken (once per tile and phase, ever). */
  placed: (tile: number, peer: string) => void
  /** Tiles went back to the pool and no claim was waiting: tell the swarm. */
  tilesReturned: (count: number) => void
  /** A resumed job has collected what its holders offered: this many tiles of the total. */
  recovered: (tiles: number, total: number) => void
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
  excluded: (peer: string, why: { tile?: number, redo: number, restartPhase?: number }) => void
}

/** Other peers that must fail to compute a job before it fails. */
const FAILING_PEERS = 2


/**
 * The coordinator of one job: owns the lease tables and the output, and hands
 * each grant its tile's pixels.
 * A job is a sequence of phases (see JobPlan), each a set of tiles under
 * leases; a summary phase's results are reduced before the next starts.
 * Workers (remote or this peer's own) talk to it only through these methods.
 */
export class JobCoordinator {
  readonly jobId: string
  readonly jobKey: string
  readonly steps: Step[]
  readonly plan: JobPlan
  /** The current phase's tiles and leases. */
  tiles: Tile[]
  phase = 0
  readonly halo: number
  readonly tileSize: number
  readonly outputFormat: PixelFormat
  readonly inputFormat: PixelFormat
  readonly tilesByPeer = new Map<string, number>()
  readonly finished: Promise<RawImage>
  private readonly inputShape: { width: number, height: number }
  private readonly pixels: TilePixelSource
  private pixelsReady = false
  private readonly self: string | undefined
  private output: RawImage | undefined
  /** The current summary phase's reduction, fed each summary as it is accepted. */
  private reducer: Reducer | undefined
  /** Reduced global steps, by step index. */
  private readonly contexts = new Map<number, StepContext>()
  private readonly pastStats: LeaseStats[] = []
  /** Who summarised each tile this phase; next phase, each peer is offered its own tiles first (its worker kept work for them). */
  private summarisedBy: string[] = []
  private affinity = new Map<string, number[]>()
  /** Peers that could not compute the job, and what they said. */
  private readonly failures = new Map<string, string>()
  private readonly clock: Clock
  private readonly parkMs: number
  private readonly scheduler: LeaseScheduler
  private state: 'running' | 'done' | 'cancelled' = 'running'
  private resolveFinished!: (image: RawImage) => void
  private rejectFinished!: (err: Error) => void
  private readonly listeners: { [E in keyof JobEvents]: Array<JobEvents[E]> } = { progress: [], placed: [], tilesReturned: [], recovered: [], phase: [], verified: [], excluded: [] }
  private readonly verifyLevel: VerifyLevel
  private readonly records: TrustRecords | undefined
  private readonly random: () => number
  readonly verifyFigures: VerifyFigures = { checked: 0, disagreements: 0, extra: 0, replaced: 0, skipped: 0, excluded: {} }
  private stopSweeping: (() => void) | undefined
  /** This phase's tiles under check. */
  private checks = new Map<number, OpenCheck>()
  /** This phase's units past its tiles (checks, tie-breaks, redone tiles): the tile each computes. */
  private extraTiles: number[] = []
  /** This phase's tiles taken on one peer's word alone (never this peer's own worker's), and whose. */
  private onWord = new Map<number, string>()
  /** Per summary phase, the peers whose summaries were reduced on their word alone. */
  private readonly reducedOnWord: Array<Set<string>> = []
  /** This phase's tiles done (not counting their extra computations). */
  private tilesDone = 0
  /** Who each tile of this phase is counted for in tilesByPeer: the peer whose result is in the output. */
  private creditedTo: string[] = []
  /** Phases started over (a liar's summaries were reduced): lease ids of each start are their own, and workers drop what they kept of the earlier start. */
  restarts = 0
  /** Peers excluded from this job: caught here, or in another job here. */
  private readonly excluded = new Set<string>()
  private stopHearing: (() => void) | undefined
  /** Holders of a resumed job not yet joined; undefined once collection is over (or was never needed). */
  private awaitedHolders: Set<string> | undefined
  private collectTimer: unknown
  private recoveryReported: boolean

  constructor (options: JobOptions) {
    this.jobId = options.jobId
    this.jobKey = options.jobKey
    this.steps = options.steps
    this.tileSize = options.tileSize
    this.clock = options.clock ?? systemClock
    this.parkMs = options.parkMs ?? DEFAULT_PARK_MS
    const { shape } = options
    this.plan = planJob(options.steps, shape)
    this.halo = this.plan.phases.at(-1)!.halo
    this.tiles = planTiles(this.plan.width, this.plan.height, options.tileSize, this.plan.phases[0]!.halo)
    this.verifyLevel = options.verify?.level ?? 'off'
    this.records = options.verify?.records
    this.random = options.verify?.random ?? secureRandom
    // Caught in another job here while this one runs: excluded here too, its work here redone.
    this.stopHearing = this.records?.onCaught(peer => { if (this.state === 'running' && !this.excluded.has(peer)) this.exclude(peer) })
    if (this.records !== undefined && this.verifyLevel !== 'off') this.stopSweeping = repeat(this.clock, CHECK_WAIT_MS / 10, () => { this.giveUpChecks() })
    this.scheduler = new LeaseScheduler(this.phaseTable(options.leaseMs, ''), {
      // No tile is granted before its pixels can be cut: a lease's time would run while the input decodes.
      state: () => this.state === 'cancelled' ? 'cancelled' : this.state === 'done' ? 'done' : this.awaitedHolders !== undefined || !this.pixelsReady ? 'hold' : 'open',
      preferred: peer => this.affinity.get(peer),
      // A check of a tile goes to a peer that has not computed it.
      refused: (peer, unit) => unit >= this.tiles.length && this.checks.get(this.tileOf(unit))?.votes.some(v => v.peer === peer) === true,
      returned: pending => { for (const l of this.listeners.tilesReturned) l(pending) },
      leaseEnded: () => { this.reportRecovery() },
    }, { clock: this.clock, parkMs: this.parkMs, ...(options.speculation !== undefined ? { speculation: options.speculation } : {}) })
    if (this.plan.phases.length === 1) this.output = createPlanOutput(this.plan)
    else this.reducer = phaseReducer(this.plan, 0, this.tiles.map(t => t.core))
    this.outputFormat = this.plan.outputFormat
    this.inputFormat = { ...shape.format }
    this.inputShape = { width: shape.width, height: shape.height }
    this.pixels = options.pixels
    // A decode that fails is its host's to report: it cancels the job.
    void options.pixels.ready.then(() => { this.pixelsReady = true; this.scheduler.wake() }, () => {})
    this.self = options.self
    this.finished = new Promise((resolve, reject) => { this.resolveFinished = resolve; this.rejectFinished = reject })
    this.finished.catch(() => {})
    this.recoveryReported = options.collect === undefined
    if (options.collect !== undefined) {
      this.awaitedHolders = new Set(options.collect.holders)
      this.collectTimer = this.clock.setTimeout(() => { this.endCollection() }, options.collect.windowMs)
    }
  }

  /** Every holder has joined, or the window passed: tiles nobody offered go out to compute. */
  private endCollection (): void {
    if (this.awaitedHolders === undefined) return
    this.awaitedHolders = undefined
    this.clock.clearTimeout(this.collectTimer)
    this.scheduler.wake()
    this.reportRecovery()
  }

  /** Once collection is over and every offer is in (or gone), the client hears how much was recovered. */
  private reportRecovery (): void {
    if (this.recoveryReported || this.awaitedHolders !== undefined || this.state === 'cancelled') return
    if (this.leases.activeLeases().some(l => l.kind === 'offer')) return
    this.recoveryReported = true
    for (const l of this.listeners.recovered) l(this.leases.stats.recovered, this.tiles.length)
  }

  /**
   * A worker joins. If it holds results of this job from an earlier
   * coordinator (`held`, a bitmap), the tiles still to do are reserved for it
   * to offer; the returned bitmap says which.
   */
  join (peer: string, held?: Uint8Array): Uint8Array | undefined {
    let reserved: Uint8Array | undefined
    // Only a one-phase job's results are kept by workers: a phase's results mean nothing to another phase. A liar's are not wanted.
    if (held !== undefined && this.state === 'running' && !this.excludes(peer) && this.phase === 0 && this.plan.phases.length === 1) {
      const now = this.clock.now()
      for (let tile = 0; tile < Math.min(this.tiles.length, held.length * 8); tile++) {
        if ((held[tile >> 3]! & (1 << (tile & 7))) === 0) continue
        if (this.leases.reserve(tile, peer, now, Math.max(this.leases.leaseMs, OFFER_HOLD_MS)) === undefined) continue
        reserved ??= new Uint8Array(Math.ceil(this.tiles.length / 8))
        reserved[tile >> 3]! |= 1 << (tile & 7)
      }
      if (reserved !== undefined) this.scheduler.scheduleExpiry()
    }
    if (this.awaitedHolders?.delete(peer) === true && this.awaitedHolders.size === 0) this.endCollection()
    return reserved
  }

  /** The reservations a peer holds now (what one of its sessions must give back if it ends). */
  reservedLeases (peer: string): string[] {
    return this.leases.activeLeases().filter(l => l.peer === peer && l.kind === 'offer').map(l => l.leaseId)
  }

  /** A result held from an earlier coordinator, for a tile reserved for this peer. */
  offer (peer: string, tileIndex: number, checksum: string, body: Uint8Array): ResultOutcome {
    const lease = this.leases.leaseOf(tileIndex, peer, 'offer')
    if (lease === undefined) return this.leases.isDone(tileIndex) ? { status: 'duplicate' } : { status: 'rejected', reason: `tile ${tileIndex} was not reserved for this peer` }
    const outcome = this.result(peer, tileIndex, lease.leaseId, checksum, body)
    // A bad offer frees its tile for computing.
    if (outcome.status === 'rejected') this.release(peer, lease.leaseId)
    this.reportRecovery()
    return outcome
  }

  on<E extends keyof JobEvents>(event: E, listener: JobEvents[E]): void {
    this.listeners[event].push(listener)
  }

  get isRunning (): boolean { return this.state === 'running' }

  /** The current phase's leases. */
  get leases (): LeaseTable { return this.scheduler.leases }

  /** What a worker needs to know once per session. */
  info (): Omit<JobInfo, 'type' | 'rid' | 'bodyBytes'> {
    return {
      jobId: this.jobId,
      jobKey: this.jobKey,
      ops: toSpecs(this.steps),
      width: this.inputShape.width,
      height: this.inputShape.height,
      format: { ...this.inputFormat },
      tileSize: this.tileSize,
      halo: this.halo,
      leaseMs: this.leases.leaseMs,
      parkMs: this.parkMs,
      tiles: this.tiles.length,
      phases: this.plan.phases.length,
    }
  }

  /** A granted tile's haloed input pixels, for `peer`: in memory for this peer's own worker, zstd-compressed where `compress` (and it pays). */
  async tilePixels (tile: Tile, peer: string, compress: boolean): Promise<TilePixelsOut> {
    return await this.pixels.haloed(tile.haloed, peer === this.self ? 'memory' : compress ? 'compressed' : 'raw')
  }

  /** A tile under lease now, or once one comes back (bounded by parkMs). A peer caught lying gets none. */
  async claim (peer: string): Promise<ClaimOutcome> {
    if (this.excludes(peer)) return { kind: 'excluded' }
    const outcome = await this.scheduler.claim(peer)
    if (outcome.kind !== 'lease') return outcome
    const { lease } = outcome
    return { kind: 'grant', grant: { lease, tile: this.tiles[this.tileOf(lease.tile)]!, phase: this.phase } }
  }

  /** Excluded from this job, or caught before this job began (in another here): excluded now. */
  private excludes (peer: string): boolean {
    if (this.excluded.has(peer)) return true
    if (this.records?.caught(peer) !== true) return false
    this.exclude(peer)
    return true
  }

  /** The tile a unit of the current phase's table computes: its own, or the one an extra computation checks. */
  private tileOf (unit: number): number {
    return unit < this.tiles.length ? unit : this.extraTiles[unit - this.tiles.length]!
  }

  /** A phase's lease table: its tiles, and room for their checks, tie-breaks and redone tiles. */
  private phaseTable (leaseMs: number, idPrefix: string): LeaseTable {
    const room = this.verifyLevel === 'off' ? 0 : 3 * this.tiles.length + 16
    return new LeaseTable(this.tiles.length + room, leaseMs, undefined, idPrefix, this.tiles.length)
  }

  /** The contexts a tile of the current phase is applied with. */
  contextsFor (tileIndex: number): TileContext[] {
    return [...contextsOfTile(this.contexts, tileIndex)].map(([step, data]) => ({ step, data, shared: 'shared' in this.contexts.get(step)! }))
  }

  /** Units done and in all, over every phase. */
  get progress (): { done: number, total: number } {
    return { done: this.phase * this.tiles.length + this.tilesDone, total: this.plan.phases.length * this.tiles.length }
  }

  /** Lease counts over every phase so far. */
  get stats (): LeaseStats {
    const total = { ...this.leases.stats }
    for (const past of this.pastStats) for (const key of Object.keys(total) as Array<keyof LeaseStats>) total[key] += past[key]
    return total
  }

  get summarising (): boolean { return this.plan.phases[this.phase]?.summarises !== undefined }

  /** Tiles of the current phase done (their checks aside). */
  get phaseDone (): number { return this.tilesDone }

  result (peer: string, tileIndex: number, leaseId: string, checksum: string, body: Uint8Array, phase = 0): ResultOutcome {
    if (this.state !== 'running') return { status: 'duplicate', reason: `job is ${this.state}` }
    // A result of a phase that is over is late, not wrong; one of a phase not begun is.
    if (phase < this.phase) return { status: 'duplicate', reason: `phase ${phase} is over` }
    if (phase > this.phase) return { status: 'rejected', reason: `phase ${phase} has not begun` }
    if (this.excludes(peer)) return { status: 'rejected', reason: 'this peer\'s results lost a vote against other peers\': it is excluded from the job' }
    const unit = this.leases.unitOfLease(leaseId)
    if (unit === undefined || this.tileOf(unit) !== tileIndex) return { status: 'rejected', reason: `no lease ${leaseId} on tile ${tileIndex} for this peer` }
    const check = this.leases.check(unit, leaseId, peer)
    if (check === 'duplicate') {
      this.leases.complete(unit, leaseId, peer, this.clock.now())
      return { status: 'duplicate' }
    }
    if (check === 'unknown') return { status: 'rejected', reason: `no lease ${leaseId} on tile ${tileIndex} for this peer` }
    const tile = this.tiles[tileIndex]!
    if (this.summarising) {
      const wrong = checkSummary(this.plan, this.phase, tile.core, body)
      if (wrong !== undefined) return { status: 'rejected', reason: `tile ${tileIndex}: ${wrong}` }
    } else {
      const expected = this.resultBytes(tileIndex)
      if (body.length !== expected) return { status: 'rejected', reason: `tile ${tileIndex} result is ${body.length} bytes, expected ${expected}` }
    }
    if (tileChecksum(body) !== checksum) return { status: 'rejected', reason: `tile ${tileIndex} result fails its checksum` }
    this.leases.complete(unit, leaseId, peer, this.clock.now())
    const phaseNow = this.phase
    if (unit < this.tiles.length) {
      this.tilesDone++
      if (this.summarising) this.summarisedBy[tileIndex] = peer
      this.credit(tileIndex, peer)
      this.first(tileIndex, peer, body)
      // A peer that computes again was in passing trouble.
      this.failures.delete(peer)
      for (const l of this.listeners.placed) l(tileIndex, peer)
      const { done, total } = this.progress
      for (const l of this.listeners.progress) l(done, total)
    } else {
      this.verifyFigures.extra++
      this.vote(tileIndex, peer, body)
    }
    // A vote may have excluded a peer whose summaries were reduced: the phase started over.
    if (this.phase === phaseNow) this.phaseDoneYet()
    return { status: 'accepted' }
  }

  /** Every tile of the phase and every check of them is done: the next phase, or the output. */
  private phaseDoneYet (): void {
    if (this.state !== 'running' || !this.leases.allOpenDone || this.checks.size > 0) return
    if (this.phase === this.plan.phases.length - 1) this.finish()
    else this.nextPhase()
  }

  /**
   * Checks no peer has taken for CHECK_WAIT_MS (and two leases): every peer
   * working on the job computed the tile already, or none is left. One
   * result alone is taken on its word (and said so); two that disagree with
   * no third to settle them fail the job. A tile redone after its only
   * computer was excluded waits for any peer, as any tile does.
   */
  private giveUpChecks (): void {
    if (this.state !== 'running') return
    const now = this.clock.now()
    const waitMs = Math.max(CHECK_WAIT_MS, 2 * this.leases.leaseMs)
    for (const [tile, open] of [...this.checks]) {
      if (open.unit === undefined || now - (open.openedAt ?? now) < waitMs || this.leases.wasLeased(open.unit) || this.leases.isDone(open.unit)) continue
      const live = this.liveVotes(open)
      // No result of a peer still in the job is in the output (or held): that tile waits for any peer, as any tile does.
      if (live.length === 0 || (live.length === 1 && live[0]!.digest !== open.shown)) continue
      if (live.length > 1) {
        this.cancel(new JobFailedError(`tile ${tile} of phase ${this.phase + 1}: ${live.length} peers computed it and disagree, and no other peer took it within ${Math.round(waitMs / 1000)} s to settle it`))
        return
      }
      this.leases.abandon(open.unit)
      this.dropCheck(tile, open)
      const [word] = live
      if (this.summarising) this.reducer!.add(tile, open.held!)
      this.takenOnWord(tile, word!.peer)
      this.verifyFigures.skipped++
      for (const l of this.listeners.verified) l(this.verifyFigures)
    }
    this.phaseDoneYet()
  }

  /**
   * A tile's first result this phase, or the first since every earlier one
   * came from peers now excluded: taken, and checked if the draw says so
   * (the coordinator's own worker is never checked). Pixels go into the
   * output at once and are replaced if they lose a vote; a summary under
   * check is held until its vote settles.
   */
  private first (tile: number, peer: string, body: Uint8Array, open: OpenCheck = { votes: [] }): void {
    if (open.votes.length > 0) {
      this.verifyFigures.replaced++
      this.credit(tile, peer)
    }
    this.dropCheck(tile, open)
    const checked = peer !== this.self && this.records !== undefined && this.random() < this.records.share(peer, this.verifyLevel)
    if (!checked) {
      this.take(tile, body)
      if (peer !== this.self) this.takenOnWord(tile, peer)
      return
    }
    const digest = resultDigest(body)
    open.votes.push({ peer, digest })
    open.shown = digest
    open.checking = peer
    this.records!.of(peer).pending++
    if (this.summarising) open.held = Buffer.from(body)
    else this.take(tile, body)
    this.checks.set(tile, open)
    this.openExtra(tile)
  }

  /** `peer`'s result is the tile's in the output: it is counted for it in tilesByPeer (no longer for the peer it replaced). */
  private credit (tile: number, peer: string): void {
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

  /** The results of a tile under check from peers still in the job (an excluded peer's, or a redone tile's placeholder, count for nothing). */
  private liveVotes (open: OpenCheck): OpenCheck['votes'] {
    return open.votes.filter(v => v.digest !== undefined && !this.excludes(v.peer))
  }

  /** One peer's result stands unchecked: if that peer is caught, the tile is done again (and a summary taints its phase's reduction). */
  private takenOnWord (tile: number, peer: string): void {
    this.onWord.set(tile, peer)
    if (this.summarising) (this.reducedOnWord[this.phase] ??= new Set()).add(peer)
  }

  /** A result into the output (pixels) or the phase's reduction (a summary, which the reducer may keep: the body's memory is the session's). */
  private take (tile: number, body: Uint8Array): void {
    if (this.summarising) this.reducer!.add(tile, Buffer.from(body))
    else {
      const t = this.tiles[tile]!
      placeTile(this.output!, t, { width: t.core.width, height: t.core.height, ...this.outputFormat, data: Buffer.from(body.buffer, body.byteOffset, body.length) })
    }
  }

  /** A further computation of a tile under check: two that agree settle it (or this peer's own word); else one more is asked for. */
  private vote (tile: number, peer: string, body: Uint8Array): void {
    const open = this.checks.get(tile)
    if (open === undefined) return
    // Never granted (a check is refused to its voters): asked again rather than left open.
    if (open.votes.some(v => v.peer === peer)) return this.openExtra(tile)
    const live = this.liveVotes(open)
    if (live.length === 0) return this.first(tile, peer, body, open)
    const digest = resultDigest(body)
    open.votes.push({ peer, digest })
    const agrees = live.some(v => v.digest === digest)
    if (!agrees) this.verifyFigures.disagreements++
    if (peer === this.self || agrees) return this.decide(tile, open, digest, body)
    for (const l of this.listeners.verified) l(this.verifyFigures)
    const computed = live.length + 1
    if (computed >= MAX_VOTES) {
      this.cancel(new JobFailedError(`tile ${tile} of phase ${this.phase + 1}: ${computed} peers computed it and no two agree`))
      return
    }
    this.openExtra(tile)
  }

  /** The vote is won by `digest` (whose bytes `body` are): the output has them, and every peer that said otherwise is excluded. */
  private decide (tile: number, open: OpenCheck, digest: string, body: Uint8Array): void {
    this.dropCheck(tile, open)
    this.verifyFigures.checked++
    if (this.summarising) this.reducer!.add(tile, open.shown === digest && open.held !== undefined ? open.held : Buffer.from(body))
    else if (open.shown !== digest) {
      this.take(tile, body)
      this.verifyFigures.replaced++
    }
    if (open.shown !== digest) this.credit(tile, open.votes.at(-1)!.peer)
    for (const v of open.votes) if (v.digest === digest) this.records!.of(v.peer).agreed++
    for (const v of open.votes) if (v.digest !== digest && v.digest !== undefined) this.convict(v.peer, tile)
    for (const l of this.listeners.verified) l(this.verifyFigures)
  }

  /**
   * A peer's result lost a vote: it is excluded for the job (and kept on
   * record), its leases go back, and what it delivered on its word alone is
   * done again. A summary of its in a reduction taints every phase after:
   * those start over from the first such phase.
   */
  private convict (peer: string, tile: number): void {
    const excluded = this.verifyFigures.excluded
    excluded[peer] = (excluded[peer] ?? 0) + 1
    if (!this.excluded.has(peer)) this.exclude(peer, tile)
    // Every other job here hears of it too.
    this.records!.convict(peer)
  }

  /**
   * `peer` gets no more of this job: its leases go back, and what it
   * delivered on its word alone is done again (`tile`: the one that caught
   * it here; none if it was caught in another job).
   */
  private exclude (peer: string, tile?: number): void {
    this.excluded.add(peer)
    this.verifyFigures.excluded[peer] ??= 0
    // As if gone: its leases back.
    this.peerGone(peer)
    const tainted = this.reducedOnWord.findIndex(peers => peers?.has(peer) === true)
    if (tainted >= 0) {
      for (const l of this.listeners.excluded) l(peer, { ...(tile !== undefined ? { tile } : {}), redo: 0, restartPhase: tainted })
      this.restartFrom(tainted)
      return
    }
    let redo = 0
    for (const [t, by] of this.onWord) {
      if (by !== peer) continue
      this.onWord.delete(t)
      this.checks.set(t, { votes: [{ peer, digest: undefined }] })
      this.openExtra(t)
      redo++
    }
    for (const l of this.listeners.excluded) l(peer, { ...(tile !== undefined ? { tile } : {}), redo })
  }

  /** A check is over, decided or not: its peer's record no longer counts it as under way. */
  private dropCheck (tile: number, open: OpenCheck): void {
    this.checks.delete(tile)
    if (open.checking !== undefined) this.records!.of(open.checking).pending--
    open.checking = undefined
  }

  /** One more computation of `tile`, claimed before fresh tiles (a liar is caught sooner). */
  private openExtra (tile: number): void {
    if (this.state !== 'running') return
    let unit: number
    try {
      unit = this.leases.open(true)
    } catch {
      this.cancel(new JobFailedError(`phase ${this.phase + 1} needed more checks than ${this.leases.tileCount - this.tiles.length}: too many peers disagree`))
      return
    }
    this.extraTiles[unit - this.tiles.length] = tile
    const open = this.checks.get(tile)
    if (open !== undefined) {
      open.unit = unit
      open.openedAt = this.clock.now()
    }
    this.scheduler.wake()
  }

  /**
   * The summaries are in: reduce them, and hand out the next phase's tiles
   * (to claims waiting first). Built aside and switched to at once: a
   * reduction or an allocation that fails fails the job, not half a phase.
   */
  private nextPhase (): void {
    const started = this.clock.now()
    const finished = this.plan.phases[this.phase]!
    try {
      this.contexts.set(finished.end, this.reducer!.finish())
    } catch (err) {
      this.cancel(err instanceof Error ? err : new Error(String(err)))
      return
    }
    const affinity = new Map<string, number[]>()
    for (const [tile, peer] of this.summarisedBy.entries()) {
      const mine = affinity.get(peer) ?? []
      mine.push(tile)
      affinity.set(peer, mine)
    }
    // Taken from the end, one claim at a time: lowest tile first, as before.
    for (const mine of affinity.values()) mine.reverse()
    this.enterPhase(this.phase + 1, affinity, this.clock.now() - started)
  }

  /** The phases from `phase` on start over: what a liar summarised went into their contexts. */
  private restartFrom (phase: number): void {
    for (const p of this.plan.phases.slice(phase)) if (p.summarises !== undefined) this.contexts.delete(p.end)
    this.reducedOnWord.length = phase
    this.restarts++
    this.output = undefined
    this.enterPhase(phase, new Map())
  }

  /** Switches to a phase's tiles and table, built aside first: an allocation that fails fails the job, not half a phase. `reduceMs`: the phase before it was just reduced. */
  private enterPhase (phase: number, affinity: Map<string, number[]>, reduceMs?: number): void {
    const next = this.plan.phases[phase]!
    let tiles: Tile[]
    let reducer: Reducer | undefined
    try {
      tiles = planTiles(this.plan.width, this.plan.height, this.tileSize, next.halo)
      reducer = next.summarises !== undefined ? phaseReducer(this.plan, phase, tiles.map(t => t.core)) : undefined
      if (next.summarises === undefined) this.output ??= createPlanOutput(this.plan)
    } catch (err) {
      this.cancel(err instanceof Error ? err : new Error(String(err)))
      return
    }
    this.reducer = reducer
    this.pastStats.push(this.leases.stats)
    this.affinity = affinity
    this.summarisedBy = []
    this.phase = phase
    this.tiles = tiles
    this.tilesDone = 0
    this.creditedTo = []
    for (const [tile, open] of this.checks) this.dropCheck(tile, open)
    this.extraTiles = []
    this.onWord = new Map()
    this.scheduler.leases = this.phaseTable(this.leases.leaseMs, this.restarts > 0 ? `p${phase}.r${this.restarts}.` : `p${phase}.`)
    this.scheduler.scheduleExpiry()
    if (reduceMs !== undefined) for (const l of this.listeners.phase) l(phase, this.plan.phases.length, reduceMs)
    this.scheduler.wake()
  }

  /**
   * A worker could not compute the job. The computation is the same on
   * every peer, so this peer's own worker failing fails the job; another's
   * may be its own trouble (its memory), so two of them must.
   */
  failed (peer: string, message: string): void {
    if (this.state !== 'running') return
    this.failures.set(peer, message)
    const others = [...this.failures.keys()].filter(p => p !== this.self)
    if (this.failures.has(this.self ?? '') || others.length >= FAILING_PEERS) {
      this.cancel(new JobFailedError(`processing failed on ${this.failures.size === 1 ? 'a peer' : `${this.failures.size} peers`}: ${message}`))
    }
  }

  /** A tile's result in raw bytes (0 for a tile that does not exist); a summary's, at most. */
  resultBytes (tileIndex: number): number {
    const tile = this.tiles[tileIndex]
    if (tile === undefined) return 0
    return this.summarising ? maxSummaryBytes(tile.core) : tile.core.width * tile.core.height * bytesPerPixel(this.outputFormat)
  }

  renew (peer: string, leaseId: string): boolean {
    return this.scheduler.renew(peer, leaseId)
  }

  release (peer: string, leaseId: string): boolean {
    return this.scheduler.release(peer, leaseId)
  }

  /** The peer's connection is gone: its tiles need not wait for the deadline. */
  peerGone (peer: string): number {
    return this.scheduler.peerGone(peer)
  }

  private settle (): void {
    this.stopHearing?.()
    this.stopSweeping?.()
    for (const [tile, open] of this.checks) this.dropCheck(tile, open)
    this.clock.clearTimeout(this.collectTimer)
    this.awaitedHolders = undefined
    this.scheduler.settle()
  }

  private finish (): void {
    this.state = 'done'
    this.settle()
    this.reportRecovery()
    this.resolveFinished(this.output!)
  }

  cancel (reason: Error): void {
    if (this.state !== 'running') return
    this.state = 'cancelled'
    this.settle()
    this.rejectFinished(reason)
  }
}
