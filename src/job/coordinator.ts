import { crc32 } from 'node:zlib'
import { bytesPerPixel, checkSummary, contextsOfTile, createPlanOutput, maxSummaryBytes, phaseReducer, planJob, planTiles, placeTile, toSpecs, type Reducer, type JobPlan, type PixelFormat, type RawImage, type Step, type StepContext, type Tile } from '../imaging/index.ts'
import type { InputShape } from '../worker/inputs.ts'
import { systemClock, type Clock } from '../clock.ts'
import { DEFAULT_PARK_MS, INPUT_UPLOADS, INPUT_WAIT_MS, OFFER_HOLD_MS } from '../defaults.ts'
import { MAX_INPUT_SOURCES } from '../protocol/constants.ts'
import { JobFailedError } from '../errors.ts'
import { LeaseTable, type Lease, type LeaseStats, type SpeculationPolicy } from './leases.ts'
import { LeaseScheduler } from './scheduler.ts'
import type { JobInfo } from '../protocol/messages.ts'

export interface JobOptions {
  jobId: string
  /** The job's content identity (input, pipeline, tile geometry): workers keep results under it. */
  jobKey: string
  /** This peer: its own worker has the input already and is never named as a source of it. */
  self?: string
  /** The input file, served to each worker once (it decodes and cuts its own tiles), and what it decodes to. */
  input: { file: Buffer, sha256: string, shape: InputShape }
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

export type ClaimOutcome = { kind: 'grant', grant: GrantedTile } | { kind: 'done' } | { kind: 'wait' } | { kind: 'cancelled' }

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
}

/** Other peers that must fail to compute a job before it fails. */
const FAILING_PEERS = 2

/**
 * A tile result's checksum. Noise already authenticates every byte on the
 * wire; this catches bugs between compute and placement, so CRC-32 (native,
 * 3x sha256's speed here) is enough.
 */
export function tileChecksum (bytes: Uint8Array): string {
  return crc32(bytes).toString(16).padStart(8, '0')
}

/**
 * The coordinator of one job: owns the input file, the lease tables and the output.
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
  /** What workers check the input file against. */
  readonly inputId: { bytes: number, sha256: string }
  private readonly inputShape: { width: number, height: number }
  /** Dropped when the job is over. */
  private input: JobOptions['input'] | undefined
  /** Uploads of the input under way from here, and the peers it has reached, newest last. */
  private inputUploads = 0
  /** Uploads of the input from here that got through: the tree keeps this near INPUT_UPLOADS, not one per worker. */
  inputUploadsDone = 0
  private readonly inputHolders: string[] = []
  private readonly self: string | undefined
  private inputTurn = 0
  private readonly inputWaiters = new Set<() => void>()
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
  private readonly listeners: { [E in keyof JobEvents]: Array<JobEvents[E]> } = { progress: [], placed: [], tilesReturned: [], recovered: [], phase: [] }
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
    const { shape } = options.input
    this.plan = planJob(options.steps, shape)
    this.halo = this.plan.phases.at(-1)!.halo
    this.tiles = planTiles(this.plan.width, this.plan.height, options.tileSize, this.plan.phases[0]!.halo)
    this.scheduler = new LeaseScheduler(new LeaseTable(this.tiles.length, options.leaseMs), {
      state: () => this.state === 'cancelled' ? 'cancelled' : this.state === 'done' || this.input === undefined ? 'done' : this.awaitedHolders !== undefined ? 'hold' : 'open',
      preferred: peer => this.affinity.get(peer),
      returned: pending => { for (const l of this.listeners.tilesReturned) l(pending) },
      leaseEnded: () => { this.reportRecovery() },
    }, { clock: this.clock, parkMs: this.parkMs, ...(options.speculation !== undefined ? { speculation: options.speculation } : {}) })
    if (this.plan.phases.length === 1) this.output = createPlanOutput(this.plan)
    else this.reducer = phaseReducer(this.plan, 0, this.tiles.map(t => t.core))
    this.outputFormat = this.plan.outputFormat
    this.inputFormat = { ...shape.format }
    this.inputShape = { width: shape.width, height: shape.height }
    this.input = options.input
    this.self = options.self
    this.inputId = { bytes: options.input.file.length, sha256: options.input.sha256 }
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
    // Only a one-phase job's results are kept by workers: a phase's results mean nothing to another phase.
    if (held !== undefined && this.state === 'running' && this.phase === 0 && this.plan.phases.length === 1) {
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
      input: { ...this.inputId },
    }
  }

  /** The input file, while the job runs: workers fetch it once each. */
  get inputFile (): Buffer | undefined { return this.state === 'running' ? this.input?.file : undefined }

  /**
   * Where `peer` gets the input: from peers it has reached, taken in turn, so
   * the file spreads as a tree and this link carries it a few times, not once
   * per worker; from here ('here': send it, then call inputSent) while none
   * has it and fewer than INPUT_UPLOADS are under way. Else it waits for
   * either (bounded). `direct` (those peers failed it) is served from here.
   */
  async inputSource (peer: string, direct: boolean): Promise<'here' | string[]> {
    const until = this.clock.now() + INPUT_WAIT_MS
    for (;;) {
      const others = this.inputHolders.filter(h => h !== peer)
      if (!direct && others.length > 0 && this.state === 'running') {
        const start = this.inputTurn++ % others.length
        return [...others.slice(start), ...others.slice(0, start)].slice(0, MAX_INPUT_SOURCES)
      }
      if (direct || this.inputUploads < INPUT_UPLOADS || this.state !== 'running' || this.clock.now() >= until) {
        this.inputUploads++
        return 'here'
      }
      await new Promise<void>(resolve => {
        const timer = this.clock.setTimeout(done, Math.max(1, until - this.clock.now()))
        const waiters = this.inputWaiters
        function done (): void { waiters.delete(wake); resolve() }
        const wake = (): void => { this.clock.clearTimeout(timer); done() }
        waiters.add(wake)
      })
    }
  }

  /** An upload from here is over; if it got through, `peer` has the input and may pass it on. */
  inputSent (peer: string, delivered: boolean): void {
    this.inputUploads--
    if (delivered) this.inputUploadsDone++
    this.addInputHolder(peer, delivered)
    for (const wake of [...this.inputWaiters]) wake()
  }

  private addInputHolder (peer: string, has: boolean): void {
    if (has && peer !== this.self && !this.inputHolders.includes(peer)) this.inputHolders.push(peer)
  }

  /** A tile under lease now, or once one comes back (bounded by parkMs). */
  async claim (peer: string): Promise<ClaimOutcome> {
    // A worker claims once it has decoded the input: it can pass the file on.
    this.addInputHolder(peer, true)
    const outcome = await this.scheduler.claim(peer)
    if (outcome.kind !== 'lease') return outcome
    const { lease } = outcome
    return { kind: 'grant', grant: { lease, tile: this.tiles[lease.tile]!, phase: this.phase } }
  }

  /** The contexts a tile of the current phase is applied with. */
  contextsFor (tileIndex: number): TileContext[] {
    return [...contextsOfTile(this.contexts, tileIndex)].map(([step, data]) => ({ step, data, shared: 'shared' in this.contexts.get(step)! }))
  }

  /** Units done and in all, over every phase. */
  get progress (): { done: number, total: number } {
    return { done: this.phase * this.tiles.length + this.leases.completed, total: this.plan.phases.length * this.tiles.length }
  }

  /** Lease counts over every phase so far. */
  get stats (): LeaseStats {
    const total = { ...this.leases.stats }
    for (const past of this.pastStats) for (const key of Object.keys(total) as Array<keyof LeaseStats>) total[key] += past[key]
    return total
  }

  get summarising (): boolean { return this.plan.phases[this.phase]?.summarises !== undefined }

  result (peer: string, tileIndex: number, leaseId: string, checksum: string, body: Uint8Array, phase = 0): ResultOutcome {
    if (this.state !== 'running') return { status: 'duplicate', reason: `job is ${this.state}` }
    // A result of a phase that is over is late, not wrong; one of a phase not begun is.
    if (phase < this.phase) return { status: 'duplicate', reason: `phase ${phase} is over` }
    if (phase > this.phase) return { status: 'rejected', reason: `phase ${phase} has not begun` }
    const check = this.leases.check(tileIndex, leaseId, peer)
    if (check === 'duplicate') {
      this.leases.complete(tileIndex, leaseId, peer, this.clock.now())
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
    this.leases.complete(tileIndex, leaseId, peer, this.clock.now())
    // A summary goes into its phase's reduction (which may keep it: the body's memory is the session's); pixels go straight into the output.
    if (this.summarising) {
      this.reducer!.add(tileIndex, Buffer.from(body))
      this.summarisedBy[tileIndex] = peer
    }
    else placeTile(this.output!, tile, { width: tile.core.width, height: tile.core.height, ...this.outputFormat, data: Buffer.from(body.buffer, body.byteOffset, body.length) })
    this.tilesByPeer.set(peer, (this.tilesByPeer.get(peer) ?? 0) + 1)
    // A peer that computes again was in passing trouble.
    this.failures.delete(peer)
    for (const l of this.listeners.placed) l(tileIndex, peer)
    const { done, total } = this.progress
    for (const l of this.listeners.progress) l(done, total)
    if (this.leases.isComplete) {
      if (this.phase === this.plan.phases.length - 1) this.finish()
      else this.nextPhase()
    }
    return { status: 'accepted' }
  }

  /**
   * The summaries are in: reduce them, and hand out the next phase's tiles
   * (to claims waiting first). Built aside and switched to at once: a
   * reduction or an allocation that fails fails the job, not half a phase.
   */
  private nextPhase (): void {
    const started = this.clock.now()
    const finished = this.plan.phases[this.phase]!
    const phase = this.phase + 1
    const next = this.plan.phases[phase]!
    let tiles: Tile[]
    try {
      this.contexts.set(finished.end, this.reducer!.finish())
      tiles = planTiles(this.plan.width, this.plan.height, this.tileSize, next.halo)
      this.reducer = next.summarises !== undefined ? phaseReducer(this.plan, phase, tiles.map(t => t.core)) : undefined
      if (next.summarises === undefined) this.output = createPlanOutput(this.plan)
    } catch (err) {
      this.cancel(err instanceof Error ? err : new Error(String(err)))
      return
    }
    this.pastStats.push(this.leases.stats)
    this.affinity = new Map()
    for (const [tile, peer] of this.summarisedBy.entries()) {
      const mine = this.affinity.get(peer) ?? []
      mine.push(tile)
      this.affinity.set(peer, mine)
    }
    // Taken from the end, one claim at a time: lowest tile first, as before.
    for (const mine of this.affinity.values()) mine.reverse()
    this.summarisedBy = []
    this.phase = phase
    this.tiles = tiles
    this.scheduler.leases = new LeaseTable(tiles.length, this.leases.leaseMs, undefined, `p${phase}.`)
    this.scheduler.scheduleExpiry()
    for (const l of this.listeners.phase) l(phase, this.plan.phases.length, this.clock.now() - started)
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
    const holder = this.inputHolders.indexOf(peer)
    if (holder >= 0) this.inputHolders.splice(holder, 1)
    return this.scheduler.peerGone(peer)
  }

  private settle (): void {
    this.clock.clearTimeout(this.collectTimer)
    this.awaitedHolders = undefined
    this.scheduler.settle()
  }

  private finish (): void {
    this.state = 'done'
    this.input = undefined
    this.settle()
    this.reportRecovery()
    this.resolveFinished(this.output!)
  }

  cancel (reason: Error): void {
    if (this.state !== 'running') return
    this.state = 'cancelled'
    this.input = undefined
    this.settle()
    this.rejectFinished(reason)
  }
}
