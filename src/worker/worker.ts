import { systemClock, repeat, whenAborted, type Clock } from '../common/clock.ts'
import { MAX_TILE_BODY_BYTES, OFFERS_IN_FLIGHT, TILE_MEMO_BYTES, WORKER_REQUEST_TIMEOUT_MS, WORKER_RETRY_MS } from '../common/defaults.ts'
import { LimitExceededError, ProtocolError, TileswarmError, oneLine } from '../common/errors.ts'
import { processFile, processTile, type ProcessedFile, type Step, freeBuffer, semaphore, TileMemo, type Gate, type RawImage, type Tile, type TileWork } from '../imaging/index.ts'
import { tileChecksum } from '../protocol/checksum.ts'
import type { Channel } from '../protocol/framing.ts'
import { packPixels, type PixelEncoding } from '../protocol/pixels.ts'
import { MAX_HELD_OUTPUTS } from '../protocol/constants.ts'
import { CoordinatorLink, type ClaimReply, type GrantedWork } from './coordinator-link.ts'
import type { JobRef } from '../protocol/job-ref.ts'
import type { ResultCache } from './result-cache.ts'
import { shortId, type Log } from '../common/log.ts'


/**
 * Computes a tile's core (or its phase's summary) from its haloed pixels, its
 * compute passing through `gate`; the simulator swaps in a cost model.
 */
export type TileProcessor = (pixels: RawImage, tile: Tile, work: TileWork, gate: Gate) => Promise<RawImage | Uint8Array>

/** Processes a batch's image whole, its compute passing through `gate`; the simulator swaps in a cost model. */
export type ImageProcessor = (file: Uint8Array, steps: readonly Step[], options: Parameters<typeof processFile>[2], gate: Gate) => Promise<ProcessedFile>

export interface WorkerOptions {
  /** This peer: its own coordinator's jobs are reached in memory, and their results need no keeping. */
  peerId: string
  /** libvips passes at once (one thread each); two lanes a slot, each with its next tile claimed: up to four tiles in hand. */
  slots: number
  /** Results kept for a later coordinator of the same job; none kept if unset. */
  cache?: ResultCache
  /** This peer's own limit: a job of a larger image is left at once. */
  limits: { maxPixels: number }
  /** Opens a tile-protocol channel to a job's coordinator; `compress`: results are worth compressing on it (off this machine). */
  connect: (ref: JobRef) => Promise<{ channel: Channel, compress: boolean }>
  log?: Log
  clock?: Clock
  process?: TileProcessor
  processImage?: ImageProcessor
  /** A tile or image this worker did was accepted; `ms`: its time in this worker (compute and send). For the peer's metrics. */
  onComputed?: (kind: 'tile' | 'image', ms: number) => void
}

/** A worker's hold on a tiled job: its link to the coordinator (each grant brings its tile's pixels). */
interface TileSession {
  kind: 'tiles'
  link: CoordinatorLink
  /**
   * What a summary phase leaves for the next on the same tiles (the
   * coordinator hands a peer the tiles it summarised), kept per start of the
   * job's phases: a start over (a liar's summaries were reduced) makes the
   * earlier one's stale.
   */
  memos: { restart: number, memo: TileMemo }
}

/** A batch needs no input: each task brings its image's file. */
interface BatchSession {
  kind: 'batch'
  link: CoordinatorLink
}

type JobSession = TileSession | BatchSession

function isRaw (out: RawImage | Uint8Array): out is RawImage {
  return !(out instanceof Uint8Array)
}

interface JobEntry {
  ref: JobRef
  link?: Promise<JobSession>
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
 * Computing that throws (not the network: a sharp error, memory) is told to
 * the coordinator, which fails the job if it is not this peer's trouble alone.
 */
async function computing<T> (link: CoordinatorLink, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (!(err instanceof TileswarmError) && !outOfMemory(err)) await link.reportFailure(oneLine((err as Error).message)).catch(() => {})
    throw err
  }
}

/** Memory that ran out is this peer's own trouble, not the job's: another peer may have room. */
function outOfMemory (err: unknown): boolean {
  return err instanceof RangeError || /out of memory|allocation failed|cannot allocate/i.test((err as Error).message)
}

/** A session is over: its link closes. */
async function endSession (session: JobSession): Promise<void> {
  await session.link.close().catch(() => {})
}

/**
 * Lanes per slot, and passes let through per slot. With two, one lane's tile
 * computes while the other's result travels and its next input is prepared,
 * so a slot's thread does not wait on copies, checksums, acks or garbage
 * collection. The peer binary gives libuv one thread per slot, so of the two
 * passes let through one computes and the other waits its turn in libuv's
 * queue, which starts it the moment the first ends.
 */
const LANES_PER_SLOT = 2

/** Often enough that a renewal lands well inside even a short lease; each tick scans a few held leases. */
const RENEW_CHECK_MS = 50

/**
 * The worker in every peer: lanes, each claiming a tile, prefetching the
 * next while computing, and streaming results back; `slots` bounds the
 * passes under way at once. Leases on long tiles are renewed; on stop every
 * lease is handed back at once.
 */
export class Worker {
  private readonly options: WorkerOptions
  private readonly clock: Clock
  private readonly jobs = new Map<string, JobEntry>()
  /** Jobs this peer has left for good (past its limits, or excluded by their coordinator): announcements of them are ignored. */
  private readonly left = new Set<string>()
  private readonly held = new Map<string, { link: CoordinatorLink, leaseMs: number, renewedAt: number }>()
  private stopped = false
  private readonly waiters = new Set<() => void>()
  private lanes: Array<Promise<void>> = []
  private stopRenewing: (() => void) | undefined
  private readonly process: TileProcessor
  private readonly processImage: ImageProcessor
  private readonly gate: Gate

  constructor (options: WorkerOptions) {
    this.options = options
    this.clock = options.clock ?? systemClock
    this.gate = semaphore(LANES_PER_SLOT * options.slots)
    this.process = options.process ?? (async (pixels, tile, work, gate) => await processTile(pixels, tile, work, { gate }))
    // One permit for the whole image: its decode, operation and encode are one libvips pipeline, or a few passes in a row.
    this.processImage = options.processImage ?? (async (file, steps, processOptions, gate) => await gate(async () => await processFile(file, steps, processOptions)))
  }

  start (): void {
    for (let i = 0; i < LANES_PER_SLOT * this.options.slots; i++) this.lanes.push(this.lane())
    this.stopRenewing = repeat(this.clock, RENEW_CHECK_MS, () => { this.renewHeld() })
  }

  /** A job was announced (or re-announced: tiles came back). */
  addJob (ref: JobRef): void {
    if (this.stopped || this.left.has(ref.jobId)) return
    const entry = this.jobs.get(ref.jobId)
    if (entry === undefined) this.jobs.set(ref.jobId, { ref, retryAt: 0, lanes: 0, finished: false, failures: 0, accepted: 0 })
    else if (!entry.finished) entry.retryAt = 0
    this.wake()
  }

  /** A coordinator's connection is gone: its jobs are dropped now, not after their links time out. */
  coordinatorGone (peerId: string): void {
    for (const entry of this.jobs.values()) {
      if (entry.ref.coordinator !== peerId) continue
      entry.finished = true
      this.maybeClose(entry.ref.jobId)
    }
  }

  /** Not to be joined again, however often announced (the most recent few thousand remembered). */
  private leave (jobId: string): void {
    this.left.add(jobId)
    if (this.left.size > 4096) this.left.delete(this.left.values().next().value!)
  }

  jobFinished (jobId: string): void {
    const entry = this.jobs.get(jobId)
    if (entry !== undefined) entry.finished = true
    this.maybeClose(jobId)
  }

  get heldLeases (): number { return this.held.size }

  /** Tiles and images this worker did that their coordinators accepted, since it started. */
  computed = 0

  private maybeClose (jobId: string): void {
    const entry = this.jobs.get(jobId)
    if (entry === undefined || !entry.finished || entry.lanes > 0) return
    this.jobs.delete(jobId)
    if (entry.link !== undefined && !this.stopped) {
      const kept = this.options.cache?.stats
      this.options.log?.(`job ${jobId}: finished here (${entry.accepted} ${entry.batch === true ? 'images' : 'tiles'} from this peer)${kept !== undefined ? `; this peer keeps ${kept.tiles} results of its jobs (${(kept.bytes / 1024 / 1024).toFixed(1)} MB) for later coordinators` : ''}`)
    }
    void entry.link?.then(endSession, () => {})
  }

  private pick (): JobEntry | undefined {
    const now = this.clock.now()
    for (const entry of this.jobs.values()) {
      if (!entry.finished && entry.retryAt <= now) return entry
    }
    return undefined
  }

  /** Until a job may be tried again, one is announced, or the worker stops. */
  private async idle (): Promise<void> {
    const now = this.clock.now()
    let until = now + 1000
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

  private async lane (): Promise<void> {
    while (!this.stopped) {
      const entry = this.pick()
      if (entry === undefined) { await this.idle(); continue }
      entry.lanes++
      try {
        entry.link ??= this.openLink(entry.ref)
        const session = await entry.link
        entry.batch = session.kind === 'batch'
        const reason = session.kind === 'batch' ? await this.workBatch(session) : await this.work(session)
        if (reason === 'excluded') {
          this.options.log?.(`job ${entry.ref.jobId}: excluded by its coordinator: a result of this peer's lost a vote against other peers' (is its memory or its libvips sound?)`, 'warn')
          this.leave(entry.ref.jobId)
        }
        if (reason === 'done' || reason === 'cancelled' || reason === 'excluded') entry.finished = true
        else entry.retryAt = this.clock.now() + WORKER_RETRY_MS
      } catch (err) {
        // The session is over for every lane: its input goes, its link closes.
        const lost = entry.link
        entry.link = undefined
        if (lost !== undefined) void lost.then(endSession, () => {})
        if (err instanceof LimitExceededError) {
          // Not this peer's job to do, however often it is announced.
          if (!entry.finished) this.options.log?.(`job ${entry.ref.jobId}: left it: ${oneLine(err.message)}`, 'warn')
          entry.finished = true
          this.leave(entry.ref.jobId)
          continue
        }
        // A lost link is retried with a backoff; after a few in a row the job is
        // dropped until its coordinator announces it again.
        entry.failures++
        entry.retryAt = this.clock.now() + WORKER_RETRY_MS * entry.failures
        if (entry.failures >= MAX_LINK_FAILURES && this.jobs.get(entry.ref.jobId) === entry && !entry.finished) {
          this.jobs.delete(entry.ref.jobId)
          if (!this.stopped) this.options.log?.(`job ${entry.ref.jobId}: left it: ${oneLine((err as Error).message)}`, 'warn')
        }
      } finally {
        entry.lanes--
        this.maybeClose(entry.ref.jobId)
      }
    }
  }

  /** Joins a job and hands over what it held of it. */
  private async openLink (ref: JobRef): Promise<JobSession> {
    const { channel, compress } = await this.options.connect(ref)
    const link = new CoordinatorLink(channel, ref, WORKER_REQUEST_TIMEOUT_MS, compress)
    try {
      const { cache } = this.options
      const held = ref.jobKey !== undefined ? cache?.heldTiles(ref.jobKey) : undefined
      const { reserved } = await link.join(held)
      if (link.batch !== undefined) {
        this.options.log?.(`batch ${ref.jobId}: working on it (${link.batch.images} images, coordinator ${shortId(ref.coordinator)})`)
        // Before any claim: a resumed batch reserves for this peer the images whose outputs it kept.
        await link.held(this.options.cache?.heldOutputs(MAX_HELD_OUTPUTS) ?? [])
        return { kind: 'batch', link }
      }
      const { info, plan } = link
      const { maxPixels } = this.options.limits
      // Its tiles are cut from an image of plan.width x plan.height on the coordinator: a peer's limit is its own to keep, as on its coordinator.
      if (info.width * info.height > maxPixels || plan.width * plan.height > maxPixels) throw new LimitExceededError(`its image of ${plan.width}x${plan.height} is over this peer's --max-pixels`)
      this.options.log?.(`job ${ref.jobId}: working on it (${info.tiles} tiles, coordinator ${shortId(ref.coordinator)})`)
      if (reserved !== undefined && cache !== undefined) await this.offer(link, reserved, cache)
      return { kind: 'tiles', link, memos: { restart: 0, memo: new TileMemo(TILE_MEMO_BYTES) } }
    } catch (err) {
      // A link that never got going is closed, not left to the coordinator's idle timeout.
      await link.close().catch(() => {})
      throw err
    }
  }

  /** Hands the job's new coordinator the results it reserved for us. */
  private async offer (link: CoordinatorLink, reserved: Uint8Array, cache: ResultCache): Promise<void> {
    const local = link.ref.coordinator === this.options.peerId
    const tiles: number[] = []
    for (let tile = 0; tile < reserved.length * 8; tile++) if ((reserved[tile >> 3]! & (1 << (tile & 7))) !== 0) tiles.push(tile)
    let offered = 0
    // A few in flight at once: one round trip each, one after another, would take a while.
    const send = async (): Promise<void> => {
      for (let tile = tiles.shift(); tile !== undefined; tile = tiles.shift()) {
        // In memory, the coordinator takes the buffer itself.
        const held = local ? cache.take(link.info.jobKey, tile) : cache.get(link.info.jobKey, tile)
        if (held !== undefined && await link.offer(tile, held.checksum, held.data) === 'accepted') offered++
      }
    }
    await Promise.all(Array.from({ length: OFFERS_IN_FLIGHT }, send))
    cache.stats.offered += offered
    this.options.log?.(`job ${link.ref.jobId}: handed over ${offered} tiles finished for an earlier coordinator`)
  }

  /** One lane on one job until it has nothing for us: claim, prefetch, compute, send. */
  /** A claim whose grant is held (renewed, handed back on stop) from the moment it arrives. */
  private claim (link: CoordinatorLink): Promise<ClaimReply> {
    const reply = link.claim().then(r => {
      if (r.kind !== 'none') {
        const { leaseId, leaseMs } = r.kind === 'grant' ? r.work : r.task
        this.held.set(leaseId, { link, leaseMs, renewedAt: this.clock.now() })
      }
      return r
    })
    // A prefetch may fail while we compute, before anyone awaits it: that must not count as unhandled.
    reply.catch(() => {})
    return reply
  }

  /** A prefetched grant we will not use goes straight back. */
  private giveBack (link: CoordinatorLink, next: Promise<ClaimReply> | undefined): void {
    void next?.then(async reply => {
      if (reply.kind === 'none') return
      const leaseId = reply.kind === 'grant' ? reply.work.leaseId : reply.task.leaseId
      if (this.held.delete(leaseId)) await link.release(leaseId).catch(() => {})
    }, () => {})
  }

  /**
   * One lane on one job until it has nothing for us: claim a unit, prefetch
   * the next while `unit` does this one (unless `prefetch` is off), count
   * what was accepted.
   */
  private async claimLoop (link: CoordinatorLink, unit: (reply: Exclude<ClaimReply, { kind: 'none' }>) => Promise<'accepted' | 'duplicate' | 'rejected' | undefined>, prefetch = true): Promise<'done' | 'wait' | 'cancelled' | 'excluded' | 'stopped'> {
    let next: Promise<ClaimReply> | undefined = this.claim(link)
    try {
      while (next !== undefined) {
        const reply: ClaimReply = await next
        next = undefined
        if (reply.kind === 'none') return reply.reason
        if (this.stopped) return 'stopped'
        if (prefetch) next = this.claim(link)
        const began = this.clock.now()
        const status = await unit(reply)
        if (!prefetch && !this.stopped) next = this.claim(link)
        if (status === 'accepted') {
          const entry = this.jobs.get(link.ref.jobId)
          if (entry !== undefined) { entry.failures = 0; entry.accepted++ }
          this.computed++
          this.options.onComputed?.(reply.kind === 'task' ? 'image' : 'tile', this.clock.now() - began)
        }
      }
      return 'stopped'
    } finally {
      this.giveBack(link, next)
    }
  }

  /**
   * A lane on a batch: an image processed whole (or the output kept from an
   * earlier coordinator), its output sent. An image that fails here is
   * reported and the lane goes on.
   */
  private async workBatch ({ link }: BatchSession): Promise<'done' | 'wait' | 'cancelled' | 'excluded' | 'stopped'> {
    const { cache } = this.options
    const keep = cache !== undefined && link.ref.coordinator !== this.options.peerId
    return await this.claimLoop(link, async reply => {
      if (reply.kind !== 'task') throw new ProtocolError('a batch granted a tile')
      const { task } = reply
      // Kept from any earlier coordinator of the batch (this peer's own, too: a batch submitted again).
      let output = cache?.get(task.key, 0)
      const kept = output !== undefined
      if (output === undefined) {
        try {
          const processed = await this.processImage(task.file, link.steps, { format: task.format, quality: link.batch!.quality, maxPixels: this.options.limits.maxPixels, maxRawBytes: MAX_TILE_BODY_BYTES }, this.gate)
          output = { data: processed.data, checksum: tileChecksum(processed.data), size: { width: processed.width, height: processed.height } }
        } catch (err) {
          this.held.delete(task.leaseId)
          // Past this peer's limits, or its memory: another peer may do it.
          await link.reportFailure(oneLine((err as Error).message), task.slot, err instanceof LimitExceededError || outOfMemory(err)).catch(() => {})
          return undefined
        }
        if (keep) cache.put(task.key, 0, output.checksum, output.data, output.size)
      }
      if (this.stopped) return undefined
      this.held.delete(task.leaseId)
      // Kept without its size (never, as kept here): computed again rather than sent unsized.
      if (output.size === undefined) throw new ProtocolError(`a kept output of image ${task.slot} has no size`)
      return await link.output(task.slot, task.leaseId, output.checksum, output.data, output.size, kept)
    // A whole image is seconds of work: this peer's own worker, whose claims cost nothing, holds none in reserve that another peer could be doing.
    }, link.ref.coordinator !== this.options.peerId)
  }

  /** A lane on a tiled job: a tile's pixels as granted, computed, sent. */
  private async work ({ link, memos }: TileSession): Promise<'done' | 'wait' | 'cancelled' | 'excluded' | 'stopped'> {
    return await this.claimLoop(link, async reply => {
      if (reply.kind !== 'grant') throw new ProtocolError('a tiled job granted a whole image')
      const { work } = reply
      // Tiles computed in JavaScript, on the in-memory channel to this peer's own
      // coordinator, never leave the microtask queue: give I/O its turn each tile.
      await new Promise(resolve => setImmediate(resolve))
      if (work.restart > memos.restart) {
        memos.restart = work.restart
        memos.memo = new TileMemo(TILE_MEMO_BYTES)
      }
      // A lane still on a tile of the earlier start keeps nothing for later.
      const memo = work.restart === memos.restart ? memos.memo : undefined
      const { pixels } = work
      const out = await computing(link, async () => await this.process(pixels, work.tile, { plan: link.plan, phase: work.phase, contexts: work.contexts, ...(memo !== undefined ? { memo } : {}) }, this.gate))
      const data = isRaw(out) ? out.data : Buffer.from(out.buffer, out.byteOffset, out.byteLength)
      // The granted pixels are this tile's alone (an operation may hand them back as its result).
      freeBuffer(pixels.data, [data])
      const checksum = tileChecksum(data)
      // Kept for a later coordinator if this one dies (one in this process dies with us); a multi-phase job's results mean nothing outside their phase.
      const keep = this.options.cache !== undefined && link.ref.coordinator !== this.options.peerId && link.plan.phases.length === 1
      if (keep) this.options.cache!.put(link.info.jobKey, work.tile.index, checksum, data)
      // Stopping handed the lease back already. A lease lost otherwise (a renewal refused or unanswered)
      // is still worth the send: the coordinator takes a late result for a tile not yet done.
      if (this.stopped) return undefined
      this.held.delete(work.leaseId)
      // In memory, or on this machine, the coordinator takes the bytes as they are; off it, fewer bytes are worth a compression.
      const packed: { body: Uint8Array, encoding?: PixelEncoding } = link.compress ? packPixels(data) : { body: data }
      const status = await link.result(work.phase, work.tile.index, work.leaseId, checksum, packed.body, packed.encoding)
      // Acked: the coordinator has every byte (a reply comes only after the whole body).
      if (!keep) freeBuffer(data)
      return status
    })
  }

  private renewHeld (): void {
    if (this.stopped) return
    const now = this.clock.now()
    for (const [leaseId, h] of this.held) {
      if (now - h.renewedAt < h.leaseMs / 3) continue
      h.renewedAt = now
      void h.link.renew(leaseId).then(ok => { if (!ok) this.held.delete(leaseId) }, () => { this.held.delete(leaseId) })
    }
  }

  /** Stops claiming and hands every lease back at once; `signal` bounds the wait for the coordinators' answers. */
  async stop (signal: AbortSignal = AbortSignal.timeout(2000)): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.stopRenewing?.()
    this.wake()
    const releases = [...this.held].map(async ([leaseId, h]) => {
      this.held.delete(leaseId)
      await h.link.release(leaseId).catch(() => {})
    })
    await Promise.race([Promise.allSettled(releases), whenAborted(signal)])
    const links = [...this.jobs.values()].map(e => e.link).filter(s => s !== undefined)
    this.jobs.clear()
    // A link still fetching or decoding its input is not waited for past the signal; it ends when it is done.
    await Promise.race([Promise.allSettled(links.map(async s => { await endSession(await s) })), whenAborted(signal)])
  }
}
