import { createHash, randomBytes } from 'node:crypto'
import { repeat } from '../common/clock.ts'
import { BATCH_WINDOW_BYTES, BATCH_WINDOW_IMAGES, COLLECT_WINDOW_MS, DEFAULT_ANNOUNCE_MS, PROGRESS_HEARTBEAT_MS, SPECULATE_AFTER_MEDIANS, SPECULATE_MAX_SHARE, SPECULATE_MIN_SAMPLES, UPLOAD_IDLE_MS } from '../common/defaults.ts'
import { InvalidImageError, LimitExceededError, ProtocolError, TileswarmError, oneLine } from '../common/errors.ts'
import type { OutputFormat, Step } from '../imaging/index.ts'
import { PROTOCOL_VERSION } from '../protocol/constants.ts'
import type { SubmitClientMessage, SubmitServerMessage } from '../protocol/messages.ts'
import { errorReply, type Wire } from '../protocol/wire.ts'
import { inputDigest } from './inputs.ts'
import { shortId } from '../common/log.ts'
import { BatchCoordinator, taskKeyOf } from './batch.ts'
import { sec, tellPeersMessage, toldKey } from './told.ts'
import { ClientGoneError, startAnnouncing, type JobHostComponents, type Hosted, type HostedJob, type JobLimits, type JobOutcome } from './host.ts'

export interface BatchSpec {
  steps: Step[]
  quality: number
  images: number
  /** A batch resumed after its coordinator was lost: these peers may hold outputs it finished. */
  holders?: Array<{ peerId: string, addrs: string[] }>
}

/**
 * One batch's life on the peer that coordinates it: it asks the client for
 * images as it has room for them (a bounded window), hands each to the swarm
 * as one task (it reads no image: workers do), and sends each output to the
 * client as it comes in; a bad image fails alone. The client hanging up
 * cancels it; so does this peer leaving.
 */
export class BatchHost implements Hosted {
  readonly jobId = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`
  private readonly startedAt: number
  private coordinator: BatchCoordinator | undefined
  /** Images done or failed, and bytes in and out: the status view reads them as they move. */
  private readonly tally = { resolved: 0, failed: 0, bytesIn: 0, bytesOut: 0 }
  private readonly c: JobHostComponents
  private readonly limits: JobLimits & { maxUploadBytes: number }
  private readonly spec: BatchSpec
  private readonly client: string
  private leaving: Error | undefined
  private readonly over = new AbortController()
  private cancel: ((err: Error) => void) | undefined

  constructor (components: JobHostComponents, limits: JobLimits & { maxUploadBytes: number }, spec: BatchSpec, client: string) {
    this.c = components
    this.limits = limits
    this.spec = spec
    this.client = client
    this.startedAt = components.clock.now()
  }

  status (): HostedJob {
    const s = this.coordinator?.stats
    return {
      jobId: this.jobId,
      kind: 'batch',
      client: this.client,
      startedAt: this.startedAt,
      phase: 'images',
      done: this.tally.resolved,
      total: this.spec.images,
      byPeer: this.coordinator !== undefined ? Object.fromEntries(this.coordinator.imagesByPeer) : {},
      pending: this.coordinator?.isRunning === true ? this.coordinator.leases.pendingCount : 0,
      leases: { granted: s?.granted ?? 0, expired: s?.expired ?? 0, released: s?.released ?? 0 },
      bytesIn: this.tally.bytesIn,
      bytesOut: this.tally.bytesOut,
      // A batch's images are not checked: see the README's "Trust".
      verify: { checked: 0, disagreements: 0, extra: 0, excluded: 0 },
    }
  }

  leave (reason: Error): void {
    this.leaving = reason
    this.cancel?.(reason)
  }

  async run (wire: Wire<SubmitServerMessage, SubmitClientMessage>): Promise<JobOutcome> {
    const { c, spec } = this
    const started = c.clock.now()
    const batch = new BatchCoordinator({
      jobId: this.jobId,
      self: c.peerId,
      steps: spec.steps,
      quality: spec.quality,
      images: spec.images,
      leaseMs: this.limits.leaseMs,
      parkMs: this.limits.parkMs,
      clock: c.clock,
      speculation: { afterMedians: SPECULATE_AFTER_MEDIANS, maxShare: SPECULATE_MAX_SHARE, minSamples: SPECULATE_MIN_SAMPLES },
      // Resumed: what the holders kept is reserved for them before anything is computed.
      ...(spec.holders !== undefined ? { collect: { holders: [...new Set([c.peerId, ...spec.holders.map(h => h.peerId)])], windowMs: COLLECT_WINDOW_MS } } : {}),
    })
    const jobKey = createHash('sha256').update(`batch\n${this.jobId}`).digest('hex')
    let outcome: JobOutcome = 'failed'
    let received = 0
    let requested = 0
    const tally = this.tally
    this.coordinator = batch
    let recovered = 0
    /** Outputs on their way to the client: they count against the window too. */
    let queuedBytes = 0
    let lastUploadAt = c.clock.now()
    // Sends keep their order: every output before the end.
    let sending: Promise<void> = Promise.resolve()
    const send = (message: Parameters<typeof wire.send>[0], body?: Uint8Array, sent?: () => void): void => {
      sending = sending.then(async () => { await wire.send(message, body) }).catch(() => {}).finally(sent)
    }
    const { promise: finished, resolve: allResolved, reject: cancelled } = Promise.withResolvers<void>()
    finished.catch(() => {})
    this.cancel = cancelled
    if (this.leaving !== undefined) cancelled(this.leaving)

    const requestMore = (): void => {
      if (!batch.isRunning) return
      const want = Math.min(spec.images - requested, BATCH_WINDOW_IMAGES - (requested - received) - batch.heldImages)
      if (want <= 0 || batch.heldBytes + queuedBytes > BATCH_WINDOW_BYTES) return
      if (requested === received) lastUploadAt = c.clock.now()
      requested += want
      send({ type: 'send', count: want })
    }
    const progress = (): void => { send({ type: 'progress', phase: 'tiles', done: tally.resolved, total: spec.images, workers: batch.workers }) }
    const oneResolved = (): void => {
      tally.resolved++
      if (tally.resolved === spec.images) allResolved()
      else requestMore()
    }
    batch.on('image', (task, out, peer, kept) => {
      tally.bytesOut += out.data.length
      if (kept) recovered++
      queuedBytes += out.data.length
      send({ type: 'image-done', index: task.index, width: out.width, height: out.height, by: peer, recovered: kept }, out.data, () => {
        queuedBytes -= out.data.length
        requestMore()
      })
      // A peer's first output makes it a holder: the client hears at once, in case this peer dies next.
      if (peer !== c.peerId && batch.imagesByPeer.get(peer) === 1) void this.tellPeers(wire, batch)
      oneResolved()
    })
    const imageFailed = (index: number, err: Error): void => {
      tally.failed++
      c.log(`batch ${this.jobId}: image ${index} failed: ${oneLine(err.message)}`, 'warn')
      send({ type: 'image-failed', index, name: err instanceof TileswarmError ? err.name : 'InternalError', message: oneLine(err.message).slice(0, 500) })
      oneResolved()
    }
    batch.on('failed', (task, err) => { imageFailed(task.index, err) })

    const announcing = startAnnouncing(c, this.limits.announceMs ?? DEFAULT_ANNOUNCE_MS, {
      jobId: this.jobId,
      jobKey,
      kind: 'batch',
      units: () => spec.images,
      done: () => tally.resolved,
      running: () => batch.isRunning,
      leases: () => batch.leases,
    }, () => { void this.tellPeers(wire, batch) })
    batch.on('returned', () => { announcing.soon() })
    const stopProgress = repeat(c.clock, PROGRESS_HEARTBEAT_MS / 2, () => {
      progress()
      // Images asked for and none coming: a client that holds its place and sends nothing is let go.
      if (received < requested && c.clock.now() - lastUploadAt > UPLOAD_IDLE_MS) cancelled(new ProtocolError(`the client sent no image for ${UPLOAD_IDLE_MS / 1000} s`))
    })

    /**
     * An uploaded image becomes a task as it is: its header is read where it
     * is processed (this peer's libvips thread is its worker's), and an image
     * no peer can read or take on fails there, alone.
     */
    const take = (index: number, format: OutputFormat, file: Buffer): void => {
      if (file.length === 0) return imageFailed(index, new InvalidImageError('the client could not read it'))
      batch.add({ index, file, key: taskKeyOf(inputDigest(file), spec.steps, format, spec.quality), format })
      // The first images of a batch, and any after a lull: the swarm hears at once.
      if (batch.leases.pendingCount === 1) announcing.soon()
    }
    const receiving = (async () => {
      while (received < spec.images) {
        const { message, body } = await wire.receive({ signal: this.over.signal })
        if (message.type !== 'image') throw new ProtocolError(`expected an image of the batch, got ${message.type}`)
        if (message.index !== received || received >= requested) throw new ProtocolError(`image ${message.index} was not asked for`)
        received++
        lastUploadAt = c.clock.now()
        tally.bytesIn += body?.length ?? 0
        take(message.index, message.format, body ?? Buffer.alloc(0))
      }
      await wire.receive({ signal: this.over.signal })
      throw new ProtocolError('the client spoke out of turn')
    })()
    receiving.catch((err: unknown) => {
      if (this.over.signal.aborted) return
      // An upload past this peer's limits (the client was told them) is the client's fault; anything else, it went away.
      cancelled(err instanceof ProtocolError || err instanceof LimitExceededError ? err : new ClientGoneError('the client went away'))
    })

    try {
      c.tiles.register(batch)
      c.events.dispatchEvent(new CustomEvent('batch', { detail: batch }))
      c.log(`batch ${this.jobId}: coordinating ${spec.images} images with ${spec.steps.map(s => s.operation.name).join(', ')} for ${shortId(this.client)}${spec.holders !== undefined ? `, resumed (${spec.holders.length} peers may hold finished images)` : ''}`)
      // Holders may have lost their way into the swarm with the old coordinator: call on them, so they hear of the batch.
      for (const h of spec.holders ?? []) if (h.peerId !== c.peerId) void c.reach(h)
      send({ type: 'started', jobId: this.jobId, maxUploadBytes: this.limits.maxUploadBytes })
      requestMore()
      progress()
      await finished
      batch.finish()
      const s = batch.stats
      send({ type: 'end', imagesByPeer: Object.fromEntries(batch.imagesByPeer), leases: { granted: s.granted, expired: s.expired, released: s.released, duplicates: s.duplicates, speculated: s.speculated, recovered } })
      await sending
      await wire.channel.close()
      outcome = 'done'
      const seconds = (c.clock.now() - started) / 1000
      c.log(`batch ${this.jobId}: done in ${sec(c.clock.now() - started)} s: ${tally.resolved - tally.failed} images, ${tally.failed} failed (${(spec.images / Math.max(seconds, 1e-3)).toFixed(2)} images/s); ${(tally.bytesIn / 1e6).toFixed(1)} MB in, ${(tally.bytesOut / 1e6).toFixed(1)} MB out; by peer: ${[...batch.imagesByPeer].map(([p, n]) => `${shortId(p)}: ${n}`).join(', ')}; leases expired ${s.expired}, released ${s.released}; ${s.speculated} straggling images copied${recovered > 0 ? `; ${recovered} kept by peers from an earlier coordinator` : ''}`)
    } catch (err) {
      const e = err as Error
      batch.cancel()
      outcome = e instanceof ClientGoneError || e === this.leaving ? 'cancelled' : 'failed'
      if (e === this.leaving) await this.tellPeers(wire, batch, true)
      c.log(`batch ${this.jobId} from ${shortId(this.client)}: ${outcome}: ${oneLine(e.message)}`)
      await sending
      await wire.send(errorReply(err)).catch(() => {})
      await wire.channel.close().catch(() => {})
    } finally {
      announcing.stop()
      stopProgress()
      this.over.abort()
      batch.cancel()
      c.tiles.unregister(this.jobId)
      void c.publish({ type: 'finished', v: PROTOCOL_VERSION, jobId: this.jobId, coordinator: c.peerId, outcome })
      c.worker.jobFinished(this.jobId)
    }
    return outcome
  }

  private told = ''

  /** Who else is there, and who holds outputs of this batch, when that changed (or `always`). */
  private async tellPeers (wire: Wire<SubmitServerMessage, SubmitClientMessage>, batch: BatchCoordinator, always = false): Promise<void> {
    const message = await tellPeersMessage(this.c, [...batch.imagesByPeer.keys()])
    const told = toldKey(message)
    if (told === this.told && !always) return
    this.told = told
    await wire.send(message).catch(() => {})
  }
}
