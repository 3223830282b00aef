import { systemClock, whenAborted, type Clock } from '../common/clock.ts'
import { STOP_WAIT_MS, WORKER_RETRY_MS } from '../common/defaults.ts'
import type { Startable } from '../common/startable.ts'
import { LimitExceededError, oneLine } from '../common/errors.ts'
import { meteredSemaphore } from '../imaging/index.ts'
import type { Log } from '../common/log.ts'
import type { WorkerLimits } from './admission.ts'
import { batchLane, gatedImageProcessor, type BatchLaneContext, type ImageProcessor } from './batch-lane.ts'
import type { LaneEnd } from './claim-loop.ts'
import type { JobRef } from '../protocol/job-ref.ts'
import { DEFAULT_PRIORITY, PRIORITY_WEIGHT } from '../protocol/constants.ts'
import { FairShare } from './fair-share.ts'
import { HandOver } from './hand-over.ts'
import { endSession, openSession, type JobSession, type SessionOptions } from './job-session.ts'
import { LeaseKeeper } from './lease-keeper.ts'
import type { ResultCache } from './result-cache.ts'
import { gatedTileProcessor, tileLane, type TileLaneContext, type TileProcessor } from './tile-lane.ts'

export interface WorkerOptions {
  /** This peer: its own coordinator's jobs are reached in memory, and their results need no keeping. */
  peerId: string
  /** libvips passes at once (one thread each); two lanes a slot, each with its next tile claimed: up to four tiles in hand. */
  slots: number
  /** Results kept for a later coordinator of the same job; none kept if unset. */
  cache?: ResultCache
  /** This peer's own limit: a job of a larger image is left at once. */
  limits: WorkerLimits
  /** Opens a tile-protocol channel to a job's coordinator; `compress`: results are worth compressing on it (off this machine). */
  connect: SessionOptions['connect']
  log?: Log
  clock?: Clock
  process?: TileProcessor
  processImage?: ImageProcessor
  /** A tile or image this worker did was accepted; `ms`: its time in this worker (compute and send). For the peer's metrics. */
  onComputed?: (kind: 'tile' | 'image', ms: number) => void
}

interface JobEntry {
  ref: JobRef
  session?: Promise<JobSession>
  retryAt: number
  lanes: number
  finished: boolean
  /** Links lost in a row; the job is dropped (until announced again) after a few. */
  failures: number
  /** Tiles this peer finished for the job (results accepted). */
  accepted: number
  /** A batch: its units are whole images. */
  batch?: boolean
}

const MAX_LINK_FAILURES = 3

/**
 * Lanes per slot. With two, one lane's tile computes while the other's
 * result travels and its next input is prepared, so a slot's thread does not
 * wait on copies, checksums, acks or garbage collection. One pass a slot is
 * let into libuv's pool at a time: a second one queued there (as before)
 * also queued the coordinator's own decode and encode behind it, which put
 * a small job beside a batch of photos at 3.3x its time alone, not 1.9x.
 */
const LANES_PER_SLOT = 2

/** Jobs left for good that are remembered: the most recent few thousand. */
const LEFT_JOBS_REMEMBERED = 4096

/** The submitter of jobs announced without one (an older coordinator's): they share as one. */
const UNNAMED_SUBMITTER = ''

/** A lane with no job to try looks again at least this often. */
const IDLE_LOOK_MS = 1000

/**
 * The worker in every peer: it owns the table of jobs it knows and runs
 * lanes over them, each claiming a tile (or a batch's image), prefetching the
 * next while computing, and streaming results back; `slots` bounds the passes
 * under way at once. After each unit a lane may move to another job: the
 * fair share (first between submitters, then between their jobs, by
 * priority) says which is owed it. Sessions stay open while their jobs run,
 * so a move costs no decode. Its lease keeper renews leases on long tiles and, on
 * stop, hands every lease back at once.
 */
export class Worker implements Startable {
  private readonly options: WorkerOptions
  private readonly clock: Clock
  private readonly jobs = new Map<string, JobEntry>()
  private readonly share = new FairShare()
  /** Jobs this peer has left for good (past its limits, or excluded by their coordinator): announcements of them are ignored. */
  private readonly left = new Set<string>()
  private readonly keeper: LeaseKeeper
  private readonly stopping = new AbortController()
  private readonly waiters = new Set<() => void>()
  private readonly lanes: Array<Promise<void>> = []
  private readonly lane: TileLaneContext & BatchLaneContext

  /** Tiles and images this worker did that their coordinators accepted, since it started. */
  computed = 0
  /** What this peer hands over of the jobs it coordinated, if it leaves mid-job (with a cache to keep them in). */
  readonly handOver: HandOver | undefined

  constructor (options: WorkerOptions) {
    this.options = options
    this.clock = options.clock ?? systemClock
    this.keeper = new LeaseKeeper({ clock: this.clock })
    if (options.cache !== undefined) this.handOver = new HandOver({ ...options, cache: options.cache, clock: this.clock })
    this.lane = {
      clock: this.clock,
      keeper: this.keeper,
      signal: this.stopping.signal,
      // A pass a slot let into libuv's pool, which has a thread more (thread-pool.ts): the coordinator's own passes here (a
      // job's decode and encode) never queue behind this worker's. What a unit waits for a place is metered, not charged to its job.
      gate: meteredSemaphore(options.slots, () => this.clock.now()),
      peerId: options.peerId,
      cache: options.cache,
      limits: options.limits,
      process: options.process ?? gatedTileProcessor,
      processImage: options.processImage ?? gatedImageProcessor,
      onAccepted: (ref, kind, ms) => { this.accepted(ref, kind, ms) },
      stay: (ref, ms) => this.stay(ref.jobId, ms),
      mayPark: ref => this.candidates(ref.jobId).every(c => c.jobId === ref.jobId),
    }
  }

  private get stopped (): boolean { return this.stopping.signal.aborted }

  get heldLeases (): number { return this.keeper.size }

  async start (): Promise<void> {
    for (let i = 0; i < LANES_PER_SLOT * this.options.slots; i++) this.lanes.push(this.runLane())
    this.keeper.start()
  }

  /** A job was announced (or re-announced: tiles came back). */
  addJob (ref: JobRef): void {
    // Left already: only to hand a job's next coordinator what this peer finished for the last.
    if (this.handOver?.heard(ref) === true || this.stopped || this.left.has(ref.jobId)) return
    const entry = this.jobs.get(ref.jobId)
    if (entry === undefined) this.jobs.set(ref.jobId, { ref, retryAt: 0, lanes: 0, finished: false, failures: 0, accepted: 0 })
    else if (!entry.finished) entry.retryAt = 0
    this.share.add({ jobId: ref.jobId, submitter: ref.submitter ?? UNNAMED_SUBMITTER, weight: PRIORITY_WEIGHT[ref.priority ?? DEFAULT_PRIORITY] })
    this.wake()
  }

  /** A coordinator's connection is gone: its jobs are dropped now, not after their links time out; `alone`: it was this peer's last connection. */
  coordinatorGone (peerId: string, alone = false): void {
    // No next coordinator will come for what this peer hands over.
    if (alone) this.handOver?.giveUp()
    for (const entry of this.jobs.values()) {
      if (entry.ref.coordinator !== peerId) continue
      entry.finished = true
      this.maybeClose(entry.ref.jobId)
    }
  }

  jobFinished (jobId: string): void {
    // Its leases go now, not when a tile under way ends: a cancelled job holds nothing of this peer's.
    this.keeper.forgetJob(jobId)
    const entry = this.jobs.get(jobId)
    if (entry !== undefined) entry.finished = true
    this.maybeClose(jobId)
  }

  /** Stops claiming and hands every lease back at once; `signal` bounds the wait for the coordinators' answers. */
  async stop (signal: AbortSignal = AbortSignal.timeout(STOP_WAIT_MS)): Promise<void> {
    if (this.stopped) return
    this.stopping.abort()
    this.wake()
    await this.keeper.stop(signal)
    const sessions = [...this.jobs.values()].map(e => e.session).filter(s => s !== undefined)
    for (const jobId of this.jobs.keys()) this.share.drop(jobId)
    this.jobs.clear()
    // A session still joining is not waited for past the signal; it ends when it is done.
    await Promise.race([Promise.allSettled(sessions.map(async s => { await endSession(await s) })), whenAborted(signal)])
  }

  /** Not to be joined again, however often announced. */
  private leave (jobId: string): void {
    this.left.add(jobId)
    if (this.left.size > LEFT_JOBS_REMEMBERED) this.left.delete(this.left.values().next().value!)
  }

  private accepted (ref: JobRef, kind: 'tile' | 'image', ms: number): void {
    const entry = this.jobs.get(ref.jobId)
    if (entry !== undefined) { entry.failures = 0; entry.accepted++ }
    this.computed++
    this.options.onComputed?.(kind, ms)
  }

  private maybeClose (jobId: string): void {
    const entry = this.jobs.get(jobId)
    if (entry === undefined || !entry.finished || entry.lanes > 0) return
    this.forget(jobId)
    if (entry.session !== undefined && !this.stopped) {
      const kept = this.options.cache?.stats
      this.options.log?.(`job ${jobId}: finished here (${entry.accepted} ${entry.batch === true ? 'images' : 'tiles'} from this peer)${kept !== undefined ? `; this peer keeps ${kept.tiles} results of its jobs (${(kept.bytes / 1024 / 1024).toFixed(1)} MB) for later coordinators` : ''}`)
    }
    void entry.session?.then(endSession, () => {})
  }

  /** Out of the table and the shares. */
  private forget (jobId: string): void {
    this.jobs.delete(jobId)
    this.share.drop(jobId)
  }

  /** The jobs a lane could take now, with the lanes on each; `on`: the lane's own, which it could go on with. */
  private candidates (on?: string): Array<{ jobId: string, lanes: number }> {
    const now = this.clock.now()
    return [...this.jobs.values()].filter(e => !e.finished && (e.retryAt <= now || e.ref.jobId === on)).map(e => ({ jobId: e.ref.jobId, lanes: e.lanes }))
  }

  /** The job owed a free lane. */
  private pick (): JobEntry | undefined {
    const jobId = this.share.choose(this.candidates())
    return jobId !== undefined ? this.jobs.get(jobId) : undefined
  }

  /** A unit of `jobId` is done here: charged to its share; the lane stays unless another job is owed it (it goes back to pick one). */
  private stay (jobId: string, ms: number): boolean {
    this.share.charge(jobId, ms)
    const owed = this.share.choose(this.candidates(jobId), jobId)
    return owed === undefined || owed === jobId
  }

  /** The job has nothing for this peer until `retryAt`: no share builds up meanwhile. */
  private retryLater (entry: JobEntry, afterMs: number): void {
    entry.retryAt = this.clock.now() + afterMs
    this.share.idle(entry.ref.jobId)
  }

  /** Until a job may be tried again, one is announced, or the worker stops. */
  private async idle (): Promise<void> {
    const now = this.clock.now()
    let until = now + IDLE_LOOK_MS
    for (const e of this.jobs.values()) if (!e.finished && e.retryAt > now) until = Math.min(until, e.retryAt)
    await new Promise<void>(resolve => {
      const done = (): void => { this.clock.clearTimeout(timer); this.waiters.delete(done); resolve() }
      const timer = this.clock.setTimeout(done, Math.max(1, until - now))
      this.waiters.add(done)
    })
  }

  private wake (): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  private async runLane (): Promise<void> {
    while (!this.stopped) {
      const entry = this.pick()
      if (entry === undefined) { await this.idle(); continue }
      entry.lanes++
      try {
        entry.session ??= openSession(entry.ref, this.options)
        const session = await entry.session
        entry.batch = session.kind === 'batch'
        this.laneEnded(entry, session.kind === 'batch' ? await batchLane(session, this.lane) : await tileLane(session, this.lane))
      } catch (err) {
        this.sessionLost(entry, err)
      } finally {
        entry.lanes--
        this.maybeClose(entry.ref.jobId)
      }
    }
  }

  /** A lane left its job: over for this peer, or to be tried again soon. */
  private laneEnded (entry: JobEntry, reason: LaneEnd): void {
    if (reason === 'excluded') {
      this.options.log?.(`job ${entry.ref.jobId}: excluded by its coordinator: a result of this peer's lost a vote against other peers' (is its memory or its libvips sound?)`, 'warn')
      this.leave(entry.ref.jobId)
    }
    if (reason === 'done' || reason === 'cancelled' || reason === 'excluded') entry.finished = true
    else if (reason !== 'yield') this.retryLater(entry, WORKER_RETRY_MS)
  }

  /** The session is over for every lane: its link closes; the job is left, or retried with a backoff. */
  private sessionLost (entry: JobEntry, err: unknown): void {
    const lost = entry.session
    entry.session = undefined
    if (lost !== undefined) void lost.then(endSession, () => {})
    if (err instanceof LimitExceededError) {
      // Not this peer's job to do, however often it is announced.
      if (!entry.finished) this.options.log?.(`job ${entry.ref.jobId}: left it: ${oneLine(err.message)}`, 'warn')
      entry.finished = true
      this.leave(entry.ref.jobId)
      return
    }
    // After a few lost in a row the job is dropped until its coordinator announces it again.
    entry.failures++
    this.retryLater(entry, WORKER_RETRY_MS * entry.failures)
    if (entry.failures >= MAX_LINK_FAILURES && this.jobs.get(entry.ref.jobId) === entry && !entry.finished) {
      this.forget(entry.ref.jobId)
      if (!this.stopped) this.options.log?.(`job ${entry.ref.jobId}: left it: ${oneLine((err as Error).message)}`, 'warn')
    }
  }
}
