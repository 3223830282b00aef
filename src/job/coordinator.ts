import type { ClaimOptions } from './scheduler.ts'
import { tileChecksum } from '../protocol/checksum.ts'
import { planJob, toSpecs, type JobPlan, type PixelFormat, type RawImage, type Step, type Tile } from '../imaging/index.ts'
import type { TilePixelSource, TilePixelsOut } from './tile-pixels.ts'
import { systemClock, type Clock } from '../common/clock.ts'
import { DEFAULT_PARK_MS, OFFER_HOLD_MS } from '../common/defaults.ts'
import { JobFailedError } from '../common/errors.ts'
import { LeaseTable, type LeaseStats } from './leases.ts'
import type { VerifyFigures } from '../protocol/verify-level.ts'
import type { JobInfo } from '../protocol/messages.ts'
import { FailurePolicy } from './failure-policy.ts'
import { Listeners } from './listeners.ts'
import { JobPhases, type TileContext } from './job-phases.ts'
import { SpotChecker, type CheckedJob } from './spot-checks.ts'
import type { ClaimOutcome, JobEvents, JobOptions } from './tiled-job.ts'
import { UnitCoordinator, type ResultOutcome } from './unit-coordinator.ts'
import { hasTile, tileBitmap } from '../protocol/tile-set.ts'
import { contextDigest } from '../protocol/checksum.ts'
import { HeldResults, OwnSummaries, type ToOffer } from './held-results.ts'

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
  readonly halo: number
  readonly inputFormat: PixelFormat
  readonly finished: Promise<RawImage>
  private readonly inputShape: { width: number, height: number }
  private readonly pixels: TilePixelSource
  private pixelsReady = false
  private readonly self: string | undefined
  private readonly phases: JobPhases
  private readonly units: UnitCoordinator
  private readonly checker: SpotChecker
  private readonly failures: FailurePolicy
  private readonly events = new Listeners<JobEvents>()
  /** What the workers of a resumed job kept of its later phases. */
  private readonly held = new HeldResults()
  /** This peer's own worker's summaries, which die with it unless other workers keep them. */
  private readonly own = new OwnSummaries()
  private resolveFinished!: (image: RawImage) => void
  private rejectFinished!: (err: Error) => void
  private recoveryReported: boolean

  constructor (options: JobOptions) {
    this.jobId = options.jobId
    this.jobKey = options.jobKey
    this.steps = options.steps
    const { shape } = options
    this.phases = new JobPhases(planJob(options.steps, shape), options.tileSize)
    this.halo = this.plan.phases.at(-1)!.halo
    this.self = options.self
    const clock = options.clock ?? systemClock
    this.checker = new SpotChecker(this.checkedJob(), { self: this.self, clock, verify: options.verify })
    this.units = new UnitCoordinator(this.phaseTable(options.leaseMs, ''), {
      // No tile is granted before its pixels can be cut: a lease's time would run while the input decodes.
      ready: () => this.pixelsReady,
      preferred: peer => this.phases.affinity.get(peer),
      refused: (peer, unit) => this.checker.refuses(peer, unit),
      returned: pending => { this.events.emit('tilesReturned', pending) },
      leaseEnded: () => { this.reportRecovery() },
      collected: () => { this.reportRecovery() },
    }, { clock, parkMs: options.parkMs ?? DEFAULT_PARK_MS, ...(options.speculation !== undefined ? { speculation: options.speculation } : {}), ...(options.collect !== undefined ? { collect: options.collect } : {}) })
    this.units.startCollectWindow()
    this.failures = new FailurePolicy({ self: this.self })
    this.inputFormat = { ...shape.format }
    this.inputShape = { width: shape.width, height: shape.height }
    this.pixels = options.pixels
    // A decode that fails is its host's to report: it cancels the job.
    void options.pixels.ready.then(() => { this.pixelsReady = true; this.units.wake() }, () => {})
    this.finished = new Promise((resolve, reject) => { this.resolveFinished = resolve; this.rejectFinished = reject })
    this.finished.catch(() => {})
    this.recoveryReported = options.collect === undefined
  }

  /** What the spot checker may see and do of this job. */
  private checkedJob (): CheckedJob {
    const job = this
    return {
      get isRunning () { return job.isRunning },
      get phase () { return job.phases.phase },
      get tileCount () { return job.phases.tiles.length },
      get summarising () { return job.phases.summarising },
      get leases () { return job.leases },
      wake: () => { job.units.wake() },
      take: (tile, body, options) => { job.phases.take(tile, body, options) },
      credit: (tile, peer) => { job.phases.credit(tile, peer) },
      fail: reason => { job.cancel(reason) },
      peerGone: peer => { job.peerGone(peer) },
      restartFrom: phase => { job.restartFrom(phase) },
      settled: () => { job.phaseDoneYet() },
      verified: figures => { job.events.emit('verified', figures) },
      excluded: (peer, why) => { job.events.emit('excluded', peer, why) },
    }
  }

  get plan (): JobPlan { return this.phases.plan }
  get tileSize (): number { return this.phases.tileSize }
  get outputFormat (): PixelFormat { return this.phases.outputFormat }
  /** The current phase (0-based) and its tiles and leases. */
  get phase (): number { return this.phases.phase }
  get tiles (): Tile[] { return this.phases.tiles }
  get leases (): LeaseTable { return this.units.leases }
  /** Phases started over (a liar's summaries were reduced): lease ids of each start are their own, and workers drop what they kept of the earlier start. */
  get restarts (): number { return this.phases.restarts }
  /** Each peer's tiles in the output: counted for the peer whose result is there. */
  get tilesByPeer (): Map<string, number> { return this.phases.tilesByPeer }
  get verifyFigures (): VerifyFigures { return this.checker.figures }
  get isRunning (): boolean { return this.units.isRunning }
  get summarising (): boolean { return this.phases.summarising }
  /** Tiles of the current phase done (their checks aside). */
  get phaseDone (): number { return this.phases.tilesDone }
  /** Units done and in all, over every phase. */
  get progress (): { done: number, total: number } { return this.phases.progress }

  /** Lease counts over every phase so far. */
  get stats (): LeaseStats { return this.phases.statsWith(this.leases.stats) }

  on<E extends keyof JobEvents>(event: E, listener: JobEvents[E]): void {
    this.events.on(event, listener)
  }

  /** Once collection is over and every offer is in (or gone), the client hears how much was recovered. */
  private reportRecovery (): void {
    if (this.recoveryReported || this.units.collecting || this.units.state === 'cancelled') return
    if (this.leases.activeLeases().some(l => l.kind === 'offer')) return
    this.recoveryReported = true
    this.events.emit('recovered', this.leases.stats.recovered, this.tiles.length, this.phase)
  }

  /**
   * A worker joins. If it holds results of this job from an earlier
   * coordinator (`held`, bitmaps by phase), the tiles of the current phase
   * still to do are reserved for it to offer (returned), and those of later
   * phases as each starts.
   */
  join (peer: string, held?: Map<number, Uint8Array>): ToOffer | undefined {
    const reserved: number[] = []
    // A liar's are not wanted.
    if (held !== undefined && this.isRunning && !this.checker.excludes(peer)) {
      const now = this.units.clock.now()
      const mine = held.get(this.phase) ?? new Uint8Array(0)
      for (let tile = 0; tile < Math.min(this.tiles.length, mine.length * 8); tile++) {
        if (!hasTile(mine, tile)) continue
        if (this.leases.reserve(tile, peer, now, Math.max(this.leases.leaseMs, OFFER_HOLD_MS)) !== undefined) reserved.push(tile)
      }
      if (reserved.length > 0) this.units.scheduleExpiry()
      this.held.joined(peer, held, this.phase)
    }
    this.units.heardFrom(peer)
    return reserved.length > 0 ? { phase: this.phase, tiles: tileBitmap(reserved, Math.ceil(this.tiles.length / 8)) } : undefined
  }

  /** A one-phase job's tiles in the output that `peer` computed, with their pixels and checksums. */
  placedBy (peer: string): Array<{ tile: number, checksum: string, data: Buffer }> {
    return this.phases.placedBy(peer).map(t => ({ ...t, checksum: tileChecksum(t.data) }))
  }

  /** The peer's session is over: it offers nothing more. */
  left (peer: string): void {
    this.held.left(peer)
  }

  /** The reservations a peer holds now (what one of its sessions must give back if it ends). */
  reservedLeases (peer: string): string[] {
    return this.units.reservationsOf(peer)
  }

  /**
   * A result held from an earlier coordinator, for a tile of `phase`
   * reserved for this peer; a later phase's only if it was computed with the
   * contexts reduced here (`context`, their digest).
   */
  offer (peer: string, tileIndex: number, checksum: string, body: Uint8Array, held: { phase?: number, context?: string } = {}): ResultOutcome {
    const phase = held.phase ?? 0
    if (phase !== this.phase) return phase < this.phase ? { status: 'duplicate', reason: `phase ${phase} is over` } : { status: 'rejected', reason: `phase ${phase} has not begun` }
    const lease = this.leases.leaseOf(tileIndex, peer, 'offer')
    if (lease === undefined) return this.leases.isDone(tileIndex) ? { status: 'duplicate' } : { status: 'rejected', reason: `tile ${tileIndex} was not reserved for this peer` }
    const stale = phase > 0 && held.context !== contextDigest(this.contextsFor(tileIndex).map(c => [c.step, c.data] as const))
    const outcome = stale ? { status: 'rejected' as const, reason: `tile ${tileIndex} of phase ${phase} was computed with other summaries than this job reduced` } : this.result(peer, tileIndex, lease.leaseId, checksum, body, phase)
    // A bad offer frees its tile for computing.
    if (outcome.status === 'rejected') this.release(peer, lease.leaseId)
    this.reportRecovery()
    return outcome
  }

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
      parkMs: this.units.parkMs,
      tiles: this.tiles.length,
      phases: this.plan.phases.length,
    }
  }

  /** A granted tile's haloed input pixels, for `peer`: in memory for this peer's own worker, zstd-compressed where `compress` (and it pays). */
  async tilePixels (tile: Tile, peer: string, compress: boolean): Promise<TilePixelsOut> {
    return await this.pixels.haloed(tile.haloed, peer === this.self ? 'memory' : compress ? 'compressed' : 'raw')
  }

  /** A tile under lease now, or once one comes back (bounded by parkMs). A peer caught lying gets none. */
  async claim (peer: string, options: ClaimOptions = {}): Promise<ClaimOutcome> {
    if (this.checker.excludes(peer)) return { kind: 'excluded' }
    const offer = this.held.tell(peer, this.phase)
    if (offer !== undefined) return { kind: 'offers', offer }
    const keep = peer !== this.self ? this.own.toKeep(peer) : undefined
    if (keep !== undefined) return { kind: 'keep', keep }
    const outcome = await this.units.claim(peer, options)
    if (outcome.kind !== 'lease') return outcome
    const { lease } = outcome
    return { kind: 'grant', grant: { lease, tile: this.tiles[this.checker.tileOf(lease.tile)]!, phase: this.phase } }
  }

  /** The contexts a tile of the current phase is applied with. */
  contextsFor (tileIndex: number): TileContext[] {
    return this.phases.contextsFor(tileIndex)
  }

  /** A tile's result in raw bytes (0 for a tile that does not exist); a summary's, at most. */
  resultBytes (tileIndex: number): number {
    return this.phases.resultBytes(tileIndex)
  }

  result (peer: string, tileIndex: number, leaseId: string, checksum: string, body: Uint8Array, phase = 0): ResultOutcome {
    const refused = this.refusal(peer, tileIndex, leaseId, body, phase)
    if (refused !== undefined) return refused
    const unit = this.leases.unitOfLease(leaseId)!
    if (tileChecksum(body) !== checksum) return { status: 'rejected', reason: `tile ${tileIndex} result fails its checksum` }
    this.leases.complete(unit, leaseId, peer, this.units.clock.now())
    const phaseNow = this.phase
    if (unit < this.tiles.length) {
      // A copy: this peer's own worker frees its buffers once the result is in.
      if (peer === this.self && this.summarising) this.own.add(tileIndex, body)
      this.phases.tileDone(tileIndex, peer)
      this.checker.first(tileIndex, peer, body)
      // A peer that computes again was in passing trouble.
      this.failures.forgive(peer)
      this.events.emit('placed', tileIndex, peer)
      const { done, total } = this.progress
      this.events.emit('progress', done, total)
    } else {
      this.checker.extra(tileIndex, peer, body)
    }
    // A vote may have excluded a peer whose summaries were reduced: the phase started over.
    if (this.phase === phaseNow) this.phaseDoneYet()
    return { status: 'accepted' }
  }

  /** Why a result is not taken (late, of a phase not begun, from an excluded peer, under no lease of its, of the wrong size); undefined if it may be. */
  private refusal (peer: string, tileIndex: number, leaseId: string, body: Uint8Array, phase: number): ResultOutcome | undefined {
    if (!this.isRunning) return { status: 'duplicate', reason: `job is ${this.units.state}` }
    // A result of a phase that is over is late, not wrong; one of a phase not begun is.
    if (phase < this.phase) return { status: 'duplicate', reason: `phase ${phase} is over` }
    if (phase > this.phase) return { status: 'rejected', reason: `phase ${phase} has not begun` }
    if (this.checker.excludes(peer)) return { status: 'rejected', reason: 'this peer\'s results lost a vote against other peers\': it is excluded from the job' }
    const unit = this.leases.unitOfLease(leaseId)
    if (unit === undefined || this.checker.tileOf(unit) !== tileIndex) return { status: 'rejected', reason: `no lease ${leaseId} on tile ${tileIndex} for this peer` }
    const leased = this.units.checkLease(unit, leaseId, peer, `tile ${tileIndex}`)
    if (leased !== undefined) return leased
    const wrong = this.phases.wrongResult(tileIndex, body)
    return wrong !== undefined ? { status: 'rejected', reason: wrong } : undefined
  }

  /** Every tile of the phase and every check of them is done: the next phase, or the output. */
  private phaseDoneYet (): void {
    if (!this.isRunning || !this.leases.allOpenDone || !this.checker.idle) return
    // What the phase recovered is said before its table goes.
    this.reportRecovery()
    if (this.phases.isLast) this.finish()
    else this.nextPhase()
  }

  /**
   * The summaries are in: reduce them, and hand out the next phase's tiles
   * (to claims waiting first). A reduction that fails fails the job.
   */
  private nextPhase (): void {
    const started = this.units.clock.now()
    // Before the reduction: a later phase's summaries go with the contexts they were computed with.
    this.own.phaseOver(this.phase, tile => this.phase > 0 ? contextDigest(this.contextsFor(tile).map(c => [c.step, c.data] as const)) : undefined)
    let affinity: Map<string, number[]>
    try {
      affinity = this.phases.reduce()
    } catch (err) {
      this.cancel(err instanceof Error ? err : new Error(String(err)))
      return
    }
    this.enterPhase(this.phase + 1, affinity, this.units.clock.now() - started)
  }

  /** The phases from `phase` on start over: what a liar summarised went into their contexts. */
  private restartFrom (phase: number): void {
    this.own.reset()
    this.phases.restartFrom(phase)
    this.enterPhase(phase, new Map())
  }

  /** Switches to a phase's tiles and table, built aside first: an allocation that fails fails the job, not half a phase. `reduceMs`: the phase before it was just reduced. */
  private enterPhase (phase: number, affinity: Map<string, number[]>, reduceMs?: number): void {
    let build
    try {
      build = this.phases.build(phase)
    } catch (err) {
      this.cancel(err instanceof Error ? err : new Error(String(err)))
      return
    }
    this.phases.enter(build, { affinity, pastStats: this.leases.stats })
    this.checker.newPhase()
    const { restarts } = this.phases
    this.units.leases = this.phaseTable(this.leases.leaseMs, restarts > 0 ? `p${phase}.r${restarts}.` : `p${phase}.`)
    this.reserveHeld(phase)
    this.units.scheduleExpiry()
    if (reduceMs !== undefined) this.events.emit('phase', phase, this.plan.phases.length, reduceMs)
    this.units.wake()
  }

  /** A resumed job's phase starts: the tiles its workers kept of it are theirs to offer first. */
  private reserveHeld (phase: number): void {
    const now = this.units.clock.now()
    const holdMs = Math.max(this.leases.leaseMs, OFFER_HOLD_MS)
    const reserved = this.held.phaseStarts(phase, this.tiles.length, (tile, peer) => !this.checker.excludes(peer) && this.leases.reserve(tile, peer, now, holdMs) !== undefined)
    // Its offers in (or gone), the client hears how many of the phase's tiles were recovered.
    if (reserved > 0) this.recoveryReported = false
  }

  /** A phase's lease table: its tiles, and room for their checks, tie-breaks and redone tiles. */
  private phaseTable (leaseMs: number, idPrefix: string): LeaseTable {
    const tiles = this.tiles.length
    return new LeaseTable(tiles + this.checker.extraRoom(tiles), leaseMs, { idPrefix, opened: tiles })
  }

  /**
   * A worker could not compute the job. The computation is the same on
   * every peer, so this peer's own worker failing fails the job; another's
   * may be its own trouble (its memory), so two of them must.
   */
  failed (peer: string, message: string): void {
    if (!this.isRunning) return
    if (this.failures.failed(peer)) this.cancel(new JobFailedError(`processing failed on ${this.failures.peers === 1 ? 'a peer' : `${this.failures.peers} peers`}: ${message}`))
  }

  renew (peer: string, leaseId: string): boolean {
    return this.units.renew(peer, leaseId)
  }

  release (peer: string, leaseId: string): boolean {
    return this.units.release(peer, leaseId)
  }

  /** The peer's connection is gone: its tiles need not wait for the deadline. */
  peerGone (peer: string): number {
    return this.units.peerGone(peer)
  }

  private finish (): void {
    this.units.end('done')
    this.checker.stop()
    this.reportRecovery()
    this.resolveFinished(this.phases.result)
  }

  cancel (reason: Error): void {
    if (!this.units.end('cancelled')) return
    this.checker.stop()
    this.rejectFinished(reason)
  }
}
