import { createHash } from 'node:crypto'
import { repeat } from '../common/clock.ts'
import { BATCH_WINDOW_BYTES, BATCH_WINDOW_IMAGES, COLLECT_WINDOW_MS, PROGRESS_HEARTBEAT_MS, SPECULATE_AFTER_MEDIANS, SPECULATE_MAX_SHARE, SPECULATE_MIN_SAMPLES, UPLOAD_IDLE_MS } from '../common/defaults.ts'
import { InvalidImageError, type JobCancelledError, ProtocolError, TileswarmError, oneLine } from '../common/errors.ts'
import type { OutputFormat, Step } from '../imaging/index.ts'
import { inputDigest } from './inputs.ts'
import { shortId } from '../common/log.ts'
import { BatchCoordinator, taskKeyOf, type BatchTask } from './batch.ts'
import { sec } from './told.ts'
import type { Hosted, HostedJob, JobHostComponents, JobLimits, JobOutcome, Submission } from './hosted.ts'
import { HostedRun, type SubmitServerWire } from './hosted-run.ts'
import { startAnnouncing, type Announcing } from './announcing.ts'
import { MAX_ERROR_CHARS } from '../protocol/constants.ts'

export interface BatchSpec {
  steps: Step[]
  quality: number
  images: number
  /** Drop the inputs' EXIF, ICC profiles and XMP (kept by default). */
  strip?: boolean
  /** A batch resumed after its coordinator was lost: these peers may hold outputs it finished. */
  holders?: Array<{ peerId: string, addrs: string[] }>
}

/**
 * One batch's life on the peer that coordinates it: it asks the client for
 * images as it has room for them (a bounded window), hands each to the swarm
 * as one task (it reads no image: workers do), and sends each output to the
 * client as it comes in; a bad image fails alone. Its start and end (the
 * client, this peer leaving, the swarm told) are the HostedRun's.
 */
export class BatchHost implements Hosted {
  private readonly hosted: HostedRun
  private readonly batch: BatchCoordinator
  /** Images done or failed, and bytes in and out: the status view reads them as they move. */
  private readonly tally = { resolved: 0, failed: 0, bytesIn: 0, bytesOut: 0 }
  private readonly c: JobHostComponents
  private readonly limits: JobLimits & { maxUploadBytes: number }
  private readonly spec: BatchSpec
  /** Images asked of the client, and those it sent. */
  private requested = 0
  private received = 0
  private lastUploadAt: number
  /** Outputs that peers kept from an earlier coordinator. */
  private recovered = 0
  /** Outputs on their way to the client: they count against the window too. */
  private queuedBytes = 0
  /** Sends keep their order: every output before the end. */
  private sending: Promise<void> = Promise.resolve()
  /** Settles when every image is done or failed; rejects when the batch ends early. */
  private readonly allResolved = Promise.withResolvers<void>()
  private announcing: Announcing | undefined
  private wire!: SubmitServerWire

  constructor (components: JobHostComponents, limits: JobLimits & { maxUploadBytes: number }, spec: BatchSpec, from: Submission) {
    this.c = components
    this.limits = limits
    this.spec = spec
    this.hosted = new HostedRun(components, { ...from, noun: 'batch' })
    this.lastUploadAt = components.clock.now()
    this.allResolved.promise.catch(() => {})
    this.batch = new BatchCoordinator({
      jobId: this.hosted.jobId,
      self: components.peerId,
      steps: spec.steps,
      quality: spec.quality,
      images: spec.images,
      ...(spec.strip === true ? { strip: true } : {}),
      leaseMs: limits.leaseMs,
      parkMs: limits.parkMs,
      clock: components.clock,
      speculation: { afterMedians: SPECULATE_AFTER_MEDIANS, maxShare: SPECULATE_MAX_SHARE, minSamples: SPECULATE_MIN_SAMPLES },
      // Resumed: what the holders kept is reserved for them before anything is computed.
      ...(spec.holders !== undefined ? { collect: { holders: [...new Set([components.peerId, ...spec.holders.map(h => h.peerId)])], windowMs: COLLECT_WINDOW_MS } } : {}),
    })
  }

  get jobId (): string { return this.hosted.jobId }

  status (): HostedJob {
    const s = this.batch.stats
    return {
      jobId: this.jobId,
      kind: 'batch',
      client: this.hosted.client,
      ops: this.spec.steps.map(s => s.operation.name),
      submitter: this.hosted.submitter,
      priority: this.hosted.priority,
      startedAt: this.hosted.startedAt,
      phase: 'images',
      done: this.tally.resolved,
      total: this.spec.images,
      byPeer: Object.fromEntries(this.batch.imagesByPeer),
      pending: this.batch.isRunning ? this.batch.leases.pendingCount : 0,
      leases: { granted: s.granted, expired: s.expired, released: s.released },
      bytesIn: this.tally.bytesIn,
      bytesOut: this.tally.bytesOut,
      // A batch's images are not checked: see docs/design.md, "Trust".
      verify: { checked: 0, disagreements: 0, extra: 0, excluded: 0 },
    }
  }

  leave (reason: Error): void {
    this.hosted.leave(reason)
  }

  cancel (reason: JobCancelledError): void {
    this.hosted.cancel(reason)
  }

  async run (wire: SubmitServerWire): Promise<JobOutcome> {
    this.wire = wire
    const { batch } = this
    // Taken on as it starts: its images fail alone, and an error from here on is the batch's.
    this.hosted.accepted = true
    this.hosted.adopt({
      cancel: reason => { this.allResolved.reject(reason); batch.cancel() },
      holders: () => [...batch.imagesByPeer.keys()],
    })
    let stopProgress: (() => void) | undefined
    return await this.hosted.run(wire, async () => {
      this.follow()
      stopProgress = repeat(this.c.clock, PROGRESS_HEARTBEAT_MS / 2, () => { this.heartbeat() })
      this.hosted.listen(async signal => { await this.receiveImages(signal) })
      this.hosted.serve(batch, 'batch')
      const { spec } = this
      this.c.log(`batch ${this.jobId}: coordinating ${spec.images} images with ${spec.steps.map(s => s.operation.name).join(', ')} for ${shortId(this.hosted.client)}${spec.holders !== undefined ? `, resumed (${spec.holders.length} peers may hold finished images)` : ''}`)
      // Holders may have lost their way into the swarm with the old coordinator: call on them, so they hear of the batch.
      for (const h of spec.holders ?? []) if (h.peerId !== this.c.peerId) void this.c.reach(h)
      this.send({ type: 'started', jobId: this.jobId, maxUploadBytes: this.limits.maxUploadBytes })
      this.requestMore()
      this.progress()
      await this.allResolved.promise
      await this.end()
    }, {
      cleanup: () => { this.announcing?.stop(); stopProgress?.(); batch.cancel() },
      drain: async () => { await this.sending },
    })
  }

  /** The batch's outputs and failures to the client as they come; its announcements to the swarm. */
  private follow (): void {
    const { batch } = this
    batch.on('image', (task, out, peer, kept) => { this.imageDone(task, out, peer, kept) })
    batch.on('failed', (task, err) => { this.imageFailed(task.index, err) })
    const announcing = startAnnouncing(this.c, {
      jobId: this.jobId,
      submitter: this.hosted.submitter,
      priority: this.hosted.priority,
      jobKey: createHash('sha256').update(`batch\n${this.jobId}`).digest('hex'),
      kind: 'batch',
      units: () => this.spec.images,
      done: () => this.tally.resolved,
      running: () => batch.isRunning,
      leases: () => batch.leases,
    }, { everyMs: this.limits.announceMs, tick: () => { void this.hosted.tellPeers() } })
    batch.on('returned', () => { announcing.soon() })
    this.announcing = announcing
  }

  private heartbeat (): void {
    this.progress()
    // Images asked for and none coming: a client that holds its place and sends nothing is let go.
    if (this.received < this.requested && this.c.clock.now() - this.lastUploadAt > UPLOAD_IDLE_MS) this.allResolved.reject(new ProtocolError(`the client sent no image for ${UPLOAD_IDLE_MS / 1000} s`))
  }

  /** Every image is in or failed: the client hears the end, after every output. */
  private async end (): Promise<void> {
    const { batch, tally, spec } = this
    batch.finish()
    const s = batch.stats
    this.send({ type: 'end', imagesByPeer: Object.fromEntries(batch.imagesByPeer), leases: { granted: s.granted, expired: s.expired, released: s.released, duplicates: s.duplicates, speculated: s.speculated, recovered: this.recovered } })
    await this.sending
    await this.wire.channel.close()
    const ms = this.c.clock.now() - this.hosted.startedAt
    this.c.log(`batch ${this.jobId}: done in ${sec(ms)} s: ${tally.resolved - tally.failed} images, ${tally.failed} failed (${(spec.images / Math.max(ms / 1000, 1e-3)).toFixed(2)} images/s); ${(tally.bytesIn / 1e6).toFixed(1)} MB in, ${(tally.bytesOut / 1e6).toFixed(1)} MB out; by peer: ${[...batch.imagesByPeer].map(([p, n]) => `${shortId(p)}: ${n}`).join(', ')}; leases expired ${s.expired}, released ${s.released}; ${s.speculated} straggling images copied${this.recovered > 0 ? `; ${this.recovered} kept by peers from an earlier coordinator` : ''}`)
  }

  private send (message: Parameters<SubmitServerWire['send']>[0], body?: Uint8Array, sent?: () => void): void {
    const { wire } = this
    this.sending = this.sending.then(async () => { await wire.send(message, body) }).catch(() => {}).finally(sent)
  }

  /** Asks the client for as many images as the window has room for. */
  private requestMore (): void {
    const { batch } = this
    if (!batch.isRunning) return
    const want = Math.min(this.spec.images - this.requested, BATCH_WINDOW_IMAGES - (this.requested - this.received) - batch.heldImages)
    if (want <= 0 || batch.heldBytes + this.queuedBytes > BATCH_WINDOW_BYTES) return
    if (this.requested === this.received) this.lastUploadAt = this.c.clock.now()
    this.requested += want
    this.send({ type: 'send', count: want })
  }

  private progress (): void {
    this.send({ type: 'progress', phase: 'tiles', done: this.tally.resolved, total: this.spec.images, workers: this.batch.workers })
  }

  private oneResolved (): void {
    this.tally.resolved++
    if (this.tally.resolved === this.spec.images) this.allResolved.resolve()
    else this.requestMore()
  }

  private imageDone (task: BatchTask, out: { data: Buffer, width: number, height: number }, peer: string, kept: boolean): void {
    this.tally.bytesOut += out.data.length
    if (kept) this.recovered++
    this.queuedBytes += out.data.length
    this.send({ type: 'image-done', index: task.index, width: out.width, height: out.height, by: peer, recovered: kept }, out.data, () => {
      this.queuedBytes -= out.data.length
      this.requestMore()
    })
    // A peer's first output makes it a holder: the client hears at once, in case this peer dies next.
    if (peer !== this.c.peerId && this.batch.imagesByPeer.get(peer) === 1) void this.hosted.tellPeers()
    this.oneResolved()
  }

  private imageFailed (index: number, err: Error): void {
    this.tally.failed++
    this.c.log(`batch ${this.jobId}: image ${index} failed: ${oneLine(err.message)}`, 'warn')
    this.send({ type: 'image-failed', index, name: err instanceof TileswarmError ? err.name : 'InternalError', message: oneLine(err.message).slice(0, MAX_ERROR_CHARS) })
    this.oneResolved()
  }

  /** The images asked for, in order, as they come: each becomes a task. */
  private async receiveImages (signal: AbortSignal): Promise<void> {
    while (this.received < this.spec.images) {
      const { message, body } = await this.wire.receive({ signal })
      if (message.type !== 'image') throw new ProtocolError(`expected an image of the batch, got ${message.type}`)
      if (message.index !== this.received || this.received >= this.requested) throw new ProtocolError(`image ${message.index} was not asked for`)
      this.received++
      this.lastUploadAt = this.c.clock.now()
      this.tally.bytesIn += body?.length ?? 0
      this.take(message.index, message.format, body ?? Buffer.alloc(0))
    }
  }

  /**
   * An uploaded image becomes a task as it is: its header is read where it
   * is processed (this peer's libvips thread is its worker's), and an image
   * no peer can read or take on fails there, alone.
   */
  private take (index: number, format: OutputFormat, file: Buffer): void {
    if (file.length === 0) return this.imageFailed(index, new InvalidImageError('the client could not read it'))
    this.batch.add({ index, file, key: taskKeyOf(inputDigest(file), this.spec.steps, format, this.spec.quality, this.spec.strip === true), format })
    // The first images of a batch, and any after a lull: the swarm hears at once.
    if (this.batch.leases.pendingCount === 1) this.announcing?.soon()
  }
}
