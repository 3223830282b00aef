import { oneLine } from '../errors.ts'
import { processTile, release, semaphore, type Gate, type RawImage, type Step, type Tile } from '../imaging/index.ts'
import { tileChecksum, DEFAULT_PARK_MS } from '../job/coordinator.ts'
import type { Channel } from '../protocol/framing.ts'
import { WorkerSession, type ClaimReply, type GrantedWork, type JobRef } from './session.ts'

export type { JobRef } from './session.ts'

/**
 * Computes a tile's core from its haloed pixels, its compute passing through
 * `gate`; the simulator swaps in a cost model.
 */
export type TileProcessor = (pixels: RawImage, tile: Tile, steps: Step[], gate: Gate) => Promise<RawImage>

export interface WorkerOptions {
  peerId: string
  /** libvips passes at once (one thread each); twice as many tiles are in hand. */
  slots: number
  /** Opens a tile-protocol channel to a job's coordinator. */
  connect: (ref: JobRef) => Promise<Channel>
  log?: (line: string) => void
  requestTimeoutMs?: number
  parkMs?: number
  /** After a 'wait', try the job again this much later (or when it is re-announced). */
  retryMs?: number
  process?: TileProcessor
  /** Fault injection for the simulator. */
  faults?: WorkerFaults
}

export interface WorkerFaults {
  /** Asked before each result is sent; true drops that result's stream halfway. */
  dropResult?: () => boolean
}

interface JobEntry {
  ref: JobRef
  session?: Promise<WorkerSession>
  retryAt: number
  lanes: number
  finished: boolean
  /** Sessions lost in a row; the job is dropped (until announced again) after a few. */
  failures: number
}

const MAX_SESSION_FAILURES = 3

export interface WorkerStats {
  tilesDone: number
  duplicates: number
  rejected: number
  released: number
}

const DEFAULT_RETRY_MS = 250

/**
 * Lanes per slot, and passes let through per slot. With two, one lane's tile
 * computes while the other's result travels and its next input is prepared,
 * so a slot's thread does not wait on copies, checksums, acks or garbage
 * collection. The peer binary gives libuv one thread per slot, so of the two
 * passes let through one computes and the other waits its turn in libuv's
 * queue, which starts it the moment the first ends.
 */
const LANES_PER_SLOT = 2

/**
 * The worker in every peer: lanes, each claiming a tile, prefetching the
 * next while computing, and streaming results back; `slots` bounds the
 * passes under way at once. Leases on long tiles are renewed; on stop every
 * lease is handed back at once.
 */
export class Worker {
  readonly stats: WorkerStats = { tilesDone: 0, duplicates: 0, rejected: 0, released: 0 }
  private readonly options: WorkerOptions
  private readonly jobs = new Map<string, JobEntry>()
  private readonly held = new Map<string, { session: WorkerSession, work: GrantedWork, renewedAt: number }>()
  private stopped = false
  private frozen = false
  private readonly waiters = new Set<() => void>()
  private lanes: Array<Promise<void>> = []
  private renewTimer: NodeJS.Timeout | undefined
  private readonly process: TileProcessor
  private readonly gate: Gate

  constructor (options: WorkerOptions) {
    this.options = options
    this.gate = semaphore(LANES_PER_SLOT * options.slots)
    this.process = options.process ?? (async (pixels, tile, steps, gate) => await processTile(pixels, tile, steps, { gate }))
  }

  start (): void {
    for (let i = 0; i < LANES_PER_SLOT * this.options.slots; i++) this.lanes.push(this.lane())
    // Often enough that a renewal lands well inside even a short lease; each tick is a scan of a few held leases.
    this.renewTimer = setInterval(() => { this.renewHeld() }, 50)
    this.renewTimer.unref()
  }

  /** A job was announced (or re-announced: tiles came back). */
  addJob (ref: JobRef): void {
    if (this.stopped) return
    const entry = this.jobs.get(ref.jobId)
    if (entry === undefined) this.jobs.set(ref.jobId, { ref, retryAt: 0, lanes: 0, finished: false, failures: 0 })
    else if (!entry.finished) entry.retryAt = 0
    this.wake()
  }

  jobFinished (jobId: string): void {
    const entry = this.jobs.get(jobId)
    if (entry !== undefined) entry.finished = true
    this.maybeClose(jobId)
  }

  get heldLeases (): number { return this.held.size }

  private maybeClose (jobId: string): void {
    const entry = this.jobs.get(jobId)
    if (entry === undefined || !entry.finished || entry.lanes > 0) return
    this.jobs.delete(jobId)
    void entry.session?.then(async s => { await s.close() }, () => {})
  }

  private pick (): JobEntry | undefined {
    const now = performance.now()
    for (const entry of this.jobs.values()) {
      if (!entry.finished && entry.retryAt <= now) return entry
    }
    return undefined
  }

  private async idle (): Promise<void> {
    const now = performance.now()
    let until = now + 1000
    for (const e of this.jobs.values()) if (!e.finished && e.retryAt > now) until = Math.min(until, e.retryAt)
    await new Promise<void>(resolve => {
      const done = (): void => { clearTimeout(timer); this.waiters.delete(done); resolve() }
      const timer = setTimeout(done, Math.max(1, until - now))
      timer.unref()
      this.waiters.add(done)
    })
  }

  private wake (): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  private async lane (): Promise<void> {
    while (!this.stopped) {
      if (this.frozen) { await this.idle(); continue }
      const entry = this.pick()
      if (entry === undefined) { await this.idle(); continue }
      entry.lanes++
      try {
        entry.session ??= this.openSession(entry.ref)
        const session = await entry.session
        const reason = await this.work(session)
        if (reason === 'done' || reason === 'cancelled') entry.finished = true
        else entry.retryAt = performance.now() + (this.options.retryMs ?? DEFAULT_RETRY_MS)
      } catch (err) {
        // A lost session is retried with a backoff; after a few in a row the job is
        // dropped until its coordinator announces it again.
        entry.session = undefined
        entry.failures++
        entry.retryAt = performance.now() + 250 * entry.failures
        if (entry.failures >= MAX_SESSION_FAILURES && this.jobs.get(entry.ref.jobId) === entry && !entry.finished) {
          this.jobs.delete(entry.ref.jobId)
          if (!this.stopped) this.options.log?.(`job ${entry.ref.jobId}: left it: ${oneLine((err as Error).message)}`)
        }
      } finally {
        entry.lanes--
        this.maybeClose(entry.ref.jobId)
      }
    }
  }

  private async openSession (ref: JobRef): Promise<WorkerSession> {
    const session = new WorkerSession(await this.options.connect(ref), ref, this.options.requestTimeoutMs ?? 10_000)
    const info = await session.join()
    this.options.log?.(`job ${ref.jobId}: working on it (${info.tiles} tiles, coordinator ${ref.coordinator})`)
    return session
  }

  /** One lane on one job until it has nothing for us: claim, prefetch, compute, send. */
  private async work (session: WorkerSession): Promise<'done' | 'wait' | 'cancelled' | 'stopped'> {
    const parkMs = this.options.parkMs ?? DEFAULT_PARK_MS
    // A grant is held (renewed, handed back on stop) from the moment it arrives.
    const claim = (): Promise<ClaimReply> => {
      const reply = session.claim(parkMs).then(r => {
        if (r.kind === 'grant') this.held.set(r.work.leaseId, { session, work: r.work, renewedAt: performance.now() })
        return r
      })
      // A prefetch may fail while we compute, before anyone awaits it: that must not count as unhandled.
      reply.catch(() => {})
      return reply
    }
    let next: Promise<ClaimReply> | undefined = claim()
    try {
      while (next !== undefined) {
        const reply: ClaimReply = await next
        next = undefined
        if (reply.kind === 'none') return reply.reason
        const { work } = reply
        if (this.stopped || this.frozen) return 'stopped'
        next = claim()
        // Tiles computed in JavaScript, on the in-memory channel to this peer's own
        // coordinator, never leave the microtask queue: give I/O its turn each tile.
        await new Promise(resolve => setImmediate(resolve))
        const core = await this.process(work.pixels, work.tile, session.steps, this.gate)
        release(work.pixels.data, [core.data])
        while (this.frozen && !this.stopped) await this.idle()
        // Stopping handed the lease back already; the result would be a duplicate.
        if (this.stopped || !this.held.has(work.leaseId)) continue
        this.held.delete(work.leaseId)
        if (this.options.faults?.dropResult?.() === true) {
          await session.dropResultHalfway(work.tile.index, work.leaseId, tileChecksum(core.data), core.data)
          throw new Error('result stream dropped halfway (fault injection)')
        }
        const status = await session.result(work.tile.index, work.leaseId, tileChecksum(core.data), core.data)
        // Acked: the coordinator has every byte (a reply comes only after the whole body).
        release(core.data)
        if (status === 'accepted') {
          this.stats.tilesDone++
          const entry = this.jobs.get(session.ref.jobId)
          if (entry !== undefined) entry.failures = 0
        }
        else if (status === 'duplicate') this.stats.duplicates++
        else this.stats.rejected++
      }
      return 'stopped'
    } finally {
      // A prefetched grant we will not use goes straight back.
      if (next !== undefined) {
        void next.then(async reply => {
          if (reply.kind === 'grant' && this.held.delete(reply.work.leaseId)) await session.release(reply.work.leaseId).catch(() => {})
        }, () => {})
      }
    }
  }

  private renewHeld (): void {
    if (this.frozen || this.stopped) return
    const now = performance.now()
    for (const [leaseId, h] of this.held) {
      if (now - h.renewedAt < h.work.leaseMs / 3) continue
      h.renewedAt = now
      void h.session.renew(leaseId).then(ok => { if (!ok) this.held.delete(leaseId) }, () => { this.held.delete(leaseId) })
    }
  }

  /** Fault injection: stop computing, renewing and answering, but keep connections open. */
  freeze (): void {
    this.frozen = true
  }

  /** Stops claiming and hands every lease back at once. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    clearInterval(this.renewTimer)
    this.wake()
    const releases = [...this.held].map(async ([leaseId, h]) => {
      this.held.delete(leaseId)
      this.stats.released++
      await h.session.release(leaseId).catch(() => {})
    })
    await Promise.race([Promise.allSettled(releases), new Promise(resolve => setTimeout(resolve, 2000).unref())])
    const sessions = [...this.jobs.values()].map(e => e.session).filter(s => s !== undefined)
    this.jobs.clear()
    await Promise.allSettled(sessions.map(async s => { await (await s).close() }))
  }

  /** Ends without a word: what a crash looks like from outside (used by the simulator). */
  abandon (): void {
    this.stopped = true
    this.frozen = true
    clearInterval(this.renewTimer)
    this.wake()
  }
}
