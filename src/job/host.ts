import { createHash } from 'node:crypto'
import { COLLECT_WINDOW_MS, HAND_OVER_WAIT_MS, SPECULATE_AFTER_MEDIANS, SPECULATE_MAX_SHARE, SPECULATE_MIN_SAMPLES } from '../common/defaults.ts'
import { shortId } from '../common/log.ts'
import { sizeText } from '../common/units.ts'
import { encodeImage, freeBuffer, pipelineRadius, processFile, toSpecs, type ImageMetadata, type OutputFormat, type ProcessedFile, type RawImage, type Step } from '../imaging/index.ts'
import { startAnnouncing } from './announcing.ts'
import type { JobCancelledError } from '../common/errors.ts'
import { ClientProgress } from './client-progress.ts'
import { JobCoordinator } from './coordinator.ts'
import { HostedRun, type SubmitServerWire } from './hosted-run.ts'
import type { Hosted, HostedJob, JobHostComponents, JobLimits, JobOutcome, Submission } from './hosted.ts'
import { takeInTiledJob, type AdmittedJob } from './job-admission.ts'
import { decideSpread, swarmShape } from './spread.ts'
import { TilePixels } from './tile-pixels.ts'
import { TileProgress } from './tile-progress.ts'
import { sec, verifySummary, verifyTold } from './told.ts'
import { verifyText, type VerifyLevel } from '../protocol/verify-level.ts'

/** What the client asked for, checked. */
export interface JobSpec {
  steps: Step[]
  /** The input file's name, for job lists. */
  name?: string
  /** Chosen per job (autoTileSize) when unset. */
  tileSize?: number
  format: OutputFormat
  quality: number
  /** How much is computed twice to catch wrong results. */
  verify: VerifyLevel
  /** Drop the input's EXIF, ICC profile and XMP (kept by default). */
  strip?: boolean
  /** A job resumed after its coordinator was lost: these peers hold tiles it finished. */
  holders?: Array<{ peerId: string, addrs: string[] }>
}

/** The job's content identity: the same input (by its digest), pipeline and tile geometry give the same tiles, whoever coordinates. */
export function jobKeyOf (inputSha256: string, steps: Step[], tileSize: number): string {
  return createHash('sha256').update(`${inputSha256}\n${JSON.stringify(toSpecs(steps))}\n${tileSize}`).digest('hex')
}

/**
 * One tiled job's life on the peer that coordinates it, once its upload is
 * in: decode, accept, coordinate its tiles across the swarm (announcing them
 * and reporting progress to the client), encode and deliver; or, where
 * spreading would not pay, all of it here as one pipeline. Its start and end
 * (the client, this peer leaving, the swarm told) are the HostedRun's.
 */
export class JobHost implements Hosted {
  private readonly hosted: HostedRun
  private bytesIn = 0
  private bytesOut = 0
  private readonly c: JobHostComponents
  private readonly limits: JobLimits
  private readonly spec: JobSpec
  private coordinator: JobCoordinator | undefined
  private readonly progress: ClientProgress
  private wire!: SubmitServerWire

  constructor (components: JobHostComponents, limits: JobLimits, spec: JobSpec, from: Submission) {
    this.c = components
    this.limits = limits
    this.spec = spec
    this.hosted = new HostedRun(components, { ...from, noun: 'job' })
    this.progress = new ClientProgress(components.clock, message => { void this.wire.send(message).catch(() => {}) })
  }

  get jobId (): string { return this.hosted.jobId }

  status (): HostedJob {
    const c = this.coordinator
    const s = c?.stats
    const last = this.progress.last
    return {
      jobId: this.jobId,
      kind: 'tiles',
      client: this.hosted.client,
      ops: this.spec.steps.map(s => s.operation.name),
      ...(this.spec.name !== undefined ? { name: this.spec.name } : {}),
      submitter: this.hosted.submitter,
      priority: this.hosted.priority,
      startedAt: this.hosted.startedAt,
      phase: last?.phase ?? 'decoding',
      done: last?.done ?? 0,
      total: last?.total ?? 0,
      byPeer: c !== undefined ? Object.fromEntries(c.tilesByPeer) : {},
      pending: c?.isRunning === true ? c.leases.pendingCount : 0,
      leases: { granted: s?.granted ?? 0, expired: s?.expired ?? 0, released: s?.released ?? 0 },
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      verify: { checked: c?.verifyFigures.checked ?? 0, disagreements: c?.verifyFigures.disagreements ?? 0, extra: c?.verifyFigures.extra ?? 0, excluded: Object.keys(c?.verifyFigures.excluded ?? {}).length },
    }
  }

  /** This peer is leaving: the job ends, and the client is told why. */
  leave (reason: Error): void {
    this.hosted.leave(reason)
  }

  cancel (reason: JobCancelledError): void {
    this.hosted.cancel(reason)
  }

  /** Runs the job to its end; whatever happens, the client is told. */
  async run (wire: SubmitServerWire, upload: Buffer): Promise<JobOutcome> {
    this.wire = wire
    this.bytesIn = upload.length
    const { progress } = this
    progress.start()
    let admitted: AdmittedJob | undefined
    return await this.hosted.run(wire, async () => {
      // Heard from while it reads and hashes: silence means a lost coordinator.
      progress.report({ type: 'progress', phase: 'decoding', done: 0, total: 0, workers: 0 })
      const job = admitted = await takeInTiledJob(upload, this.spec, this.limits, this.c)
      const { header, plan } = job
      const spread = await decideSpread(this.c.costs, { plan, inputPixels: header.width * header.height, container: header.container, format: this.spec.format }, swarmShape(job.view, job.tiles, this.c.trust, this.spec.verify), this.c.spread)
      this.c.log(`job ${this.jobId}: ${spread.reason}`)
      if (spread.mode === 'whole') {
        this.hosted.accepted = true
        await this.runWhole(processFile(upload, this.spec.steps, { format: this.spec.format, quality: this.spec.quality, maxPixels: this.limits.maxPixels, maxRawBytes: Infinity, strip: this.spec.strip === true }), job, spread.reason)
      } else {
        await this.runTiles(job, spread.reason)
      }
    }, { cleanup: () => { progress.stop(); admitted?.input.release() } })
  }

  /**
   * A job not worth sharing, in one pass here: decode, steps and encode as
   * `submit --local` runs them (one streamed libvips pipeline where there is
   * one that gives the same bytes): the same bytes the tiles would give,
   * without their copies, passes and waits.
   */
  private async runWhole (processing: Promise<ProcessedFile>, job: AdmittedJob, note: string): Promise<void> {
    const { wire } = this
    const { tiles } = job
    const started = this.hosted.startedAt
    // Under way already; if the client goes before it is awaited, its failure is nobody's to report.
    processing.catch(() => {})
    // The job's own tile geometry all the same: a client that resumes it elsewhere asks for these tiles.
    await wire.send({ type: 'accepted', jobId: this.jobId, width: job.plan.width, height: job.plan.height, tiles, phases: 1, tileSize: job.tileSize, halo: pipelineRadius(this.spec.steps), notes: [...job.header.notes, note] })
    this.progress.report({ type: 'progress', phase: 'tiles', done: 0, total: tiles, workers: 1 })
    const processed = await processing
    const encoded = processed.data
    const interrupted = this.hosted.interrupted
    if (interrupted !== undefined) throw interrupted
    this.progress.report({ type: 'progress', phase: 'sending', done: tiles, total: tiles, workers: 1 })
    const processedAt = this.c.clock.now()
    await wire.send({ type: 'result', width: processed.width, height: processed.height, tilesByPeer: { [this.c.peerId]: tiles }, leases: { granted: 0, expired: 0, released: 0, duplicates: 0, speculated: 0, recovered: 0 } }, encoded)
    this.bytesOut = encoded.length
    await wire.channel.close()
    this.c.log(`job ${this.jobId}: done in ${sec(this.c.clock.now() - started)} s as one pipeline (decode, operation and encode ${sec(processedAt - started)} s, send ${sec(this.c.clock.now() - processedAt)} s), ${encoded.length} bytes delivered`)
  }

  /** The job spread over the swarm: its input decoded here once, its tiles coordinated, the output encoded and sent. */
  private async runTiles (job: AdmittedJob, note: string): Promise<void> {
    const { header, plan, input } = job
    // Decoded here, once, and the prelude run once: every worker gets its tiles' pixels from it.
    const readAt = this.c.clock.now()
    const pixels = new TilePixels(async () => await input.decoded(), plan)
    if (plan.prelude.length === 0) void pixels.ready.then(() => { this.c.costs.decoded(header.container, header.width * header.height, (this.c.clock.now() - readAt) * 1e6) }, () => {})
    const coordinator = this.startCoordinator(job, pixels)
    const notes = [...header.notes, note, ...planNotes(coordinator)]
    if (this.c.connectedPeers() === 0) notes.push('this peer is connected to no other: it computes every tile itself (is the swarm up, and was this peer started with --bootstrap?)')
    this.hosted.adopt({
      cancel: reason => { coordinator.cancel(reason) },
      // The peers that computed tiles (of any phase) keep them.
      holders: () => [...coordinator.tilesByPeer.keys()],
      handOver: () => this.handOver(coordinator),
    })
    // A file broken past its header fails the job, with the decoder's word.
    pixels.ready.catch((err: unknown) => { coordinator.cancel(err instanceof Error ? err : new Error(String(err))) })
    this.hosted.accepted = true
    this.c.log(`job ${this.jobId}: coordinating ${coordinator.tiles.length} tile${coordinator.tiles.length === 1 ? '' : 's'} of ${plan.width}x${plan.height}${plan.phases.length > 1 ? ` in ${plan.phases.length} phases` : ''} for ${shortId(this.hosted.client)}${this.spec.holders !== undefined ? `, resumed: collecting finished tiles from ${this.spec.holders.length} peers` : ''}`)
    this.logEvents(coordinator)
    await this.wire.send({ type: 'accepted', jobId: this.jobId, width: plan.width, height: plan.height, tiles: coordinator.tiles.length, phases: plan.phases.length, tileSize: job.tileSize, halo: coordinator.halo, notes })
    // The client hanging up (or speaking out of turn) ends the job.
    this.hosted.listen()
    const output = await this.coordinateTiles(coordinator)
    const tilesAt = this.c.clock.now()
    // Every tile is in: the input goes before the encode (its memory, not the output's, is what the encode can have).
    pixels.release()
    input.release()
    await this.deliver(coordinator, output, { readAt, tilesAt, pixelsSent: pixels.sent, metadata: header.metadata })
  }

  /** This peer leaving mid-job: the tiles its own worker finished are kept, for the job's next coordinator; false if there are none to keep, or nobody to take them. */
  private handOver (coordinator: JobCoordinator): boolean {
    const { handOver } = this.c.worker
    if (handOver === undefined || this.c.connectedPeers() === 0) return false
    const tiles = coordinator.placedBy(this.c.peerId)
    if (tiles.length === 0) return false
    handOver.keep(coordinator.jobKey, tiles, HAND_OVER_WAIT_MS)
    this.c.log(`job ${this.jobId}: leaving; keeping the ${tiles.length} tiles this peer finished for the job's next coordinator (at most ${HAND_OVER_WAIT_MS / 1000} s)`)
    return true
  }

  private startCoordinator (job: AdmittedJob, pixels: TilePixels): JobCoordinator {
    const { plan } = job
    const { holders } = this.spec
    const coordinator = new JobCoordinator({
      jobId: this.jobId,
      jobKey: jobKeyOf(job.sha256, this.spec.steps, job.tileSize),
      self: this.c.peerId,
      shape: job.shape,
      pixels,
      steps: this.spec.steps,
      tileSize: job.tileSize,
      leaseMs: this.limits.leaseMs,
      parkMs: this.limits.parkMs,
      clock: this.c.clock,
      speculation: { afterMedians: SPECULATE_AFTER_MEDIANS, maxShare: SPECULATE_MAX_SHARE, minSamples: SPECULATE_MIN_SAMPLES },
      verify: { level: this.spec.verify, records: this.c.trust },
      ...(holders !== undefined ? { collect: { holders: [...new Set([this.c.peerId, ...holders.map(h => h.peerId)])], windowMs: COLLECT_WINDOW_MS } } : {}),
    })
    // Holders may have lost their way into the swarm with the old coordinator: call on them, so they hear of the job.
    for (const h of holders ?? []) if (h.peerId !== this.c.peerId) void this.c.reach(h)
    this.coordinator = coordinator
    return coordinator
  }

  /** What the job log (and, for recovered tiles, the client) hears as the tiles go. */
  private logEvents (coordinator: JobCoordinator): void {
    coordinator.on('phase', (phase, phases, reduceMs) => {
      this.c.log(`job ${this.jobId}: phase ${phase} of ${phases} summarised and reduced (${reduceMs.toFixed(0)} ms); phase ${phase + 1} starts`)
    })
    coordinator.on('excluded', (peer, why) => {
      const wrong = coordinator.verifyFigures.excluded[peer] ?? 0
      this.c.log(`job ${this.jobId}: excluded peer ${peer}: ${why.tile === undefined ? 'its results lost a vote in an earlier job here' : `its result for tile ${why.tile} lost a vote against other peers' (${wrong} wrong)`}${why.restartPhase !== undefined ? `; its summaries were reduced on its word, so phase ${why.restartPhase + 1} on starts over` : why.redo > 0 ? `; the ${why.redo} tiles taken on its word alone are computed again` : ''}`, 'warn')
    })
    coordinator.on('recovered', (tiles, total, phase) => {
      const phases = coordinator.plan.phases.length
      this.c.log(`job ${this.jobId}: recovered ${tiles} of ${total} tiles${phases > 1 ? ` of phase ${phase + 1}` : ''} from their holders`)
      void this.wire.send({ type: 'recovered', tiles, total, ...(phases > 1 ? { phase, phases } : {}) }).catch(() => {})
    })
  }

  /** The tile phase: announce, hand out, collect; progress to the client as tiles land. */
  private async coordinateTiles (coordinator: JobCoordinator): Promise<RawImage> {
    const tileProgress = new TileProgress({
      clock: this.c.clock,
      progress: this.progress,
      counts: () => ({ ...coordinator.progress, workers: coordinator.tilesByPeer.size, ...verifyTold(coordinator.verifyFigures, this.spec.verify) }),
      running: () => coordinator.isRunning,
    })
    const announcing = startAnnouncing(this.c, {
      jobId: this.jobId,
      submitter: this.hosted.submitter,
      priority: this.hosted.priority,
      jobKey: coordinator.jobKey,
      kind: 'tiles',
      units: () => coordinator.tiles.length,
      done: () => coordinator.phaseDone,
      running: () => coordinator.isRunning,
      leases: () => coordinator.leases,
    }, { everyMs: this.limits.announceMs, tick: () => { void this.hosted.tellPeers() } })
    coordinator.on('progress', (done, total) => { tileProgress.soon(done, total) })
    // Checks settle after their tiles: the client hears of them, and at once of a peer excluded (its tiles may go back).
    coordinator.on('verified', () => { const { done, total } = coordinator.progress; tileProgress.soon(done, total) })
    coordinator.on('excluded', () => { if (coordinator.isRunning) tileProgress.now() })
    // A peer's first finished tile makes it a holder: the client hears at once, in case this peer dies next.
    coordinator.on('placed', (tile, by) => {
      tileProgress.place(by, coordinator.phase * coordinator.tiles.length + tile)
      if (by !== this.c.peerId && coordinator.tilesByPeer.get(by) === 1) void this.hosted.tellPeers()
    })
    coordinator.on('tilesReturned', () => { announcing.soon() })
    this.hosted.serve(coordinator, 'job')
    tileProgress.now()
    void this.hosted.tellPeers({ always: true })
    announcing.announce()
    try {
      return await coordinator.finished
    } finally {
      tileProgress.stop()
      announcing.stop()
    }
  }

  /** Encodes the output and sends it to the client. */
  private async deliver (coordinator: JobCoordinator, output: RawImage, at: { readAt: number, tilesAt: number, pixelsSent: { wire: number, raw: number }, metadata: ImageMetadata }): Promise<void> {
    const { wire, progress } = this
    const { total } = coordinator.progress
    const counts = { type: 'progress', done: total, total, workers: coordinator.tilesByPeer.size } as const
    progress.report({ ...counts, phase: 'encoding' })
    const encoded = await encodeImage(output, { format: this.spec.format, quality: this.spec.quality, metadata: at.metadata })
    const encodedAt = this.c.clock.now()
    this.c.costs.encoded(this.spec.format, output.width * output.height, (encodedAt - at.tilesAt) * 1e6)
    freeBuffer(output.data)
    progress.report({ ...counts, phase: 'sending' })
    const s = coordinator.stats
    await wire.send({
      type: 'result',
      width: output.width,
      height: output.height,
      tilesByPeer: Object.fromEntries(coordinator.tilesByPeer),
      leases: { granted: s.granted, expired: s.expired, released: s.released, duplicates: s.duplicates, speculated: s.speculated, recovered: s.recovered },
      ...verifyTold(coordinator.verifyFigures, this.spec.verify),
    }, encoded)
    this.bytesOut = encoded.length
    await wire.channel.close()
    const now = this.c.clock.now()
    const started = this.hosted.startedAt
    // The serial parts (header, encode, send) are what more peers cannot shorten.
    this.c.log(`job ${this.jobId}: done in ${sec(now - started)} s (header and digest ${sec(at.readAt - started)} s, tiles ${sec(at.tilesAt - at.readAt)} s, encode ${sec(encodedAt - at.tilesAt)} s, send ${sec(now - encodedAt)} s), ${encoded.length} bytes delivered; tile pixels sent ${sizeText(at.pixelsSent.wire)} for ${sizeText(at.pixelsSent.raw)} raw; tiles by peer: ${[...coordinator.tilesByPeer].map(([p, n]) => `${shortId(p)}: ${n}`).join(', ')}; leases expired ${s.expired}, released ${s.released}; ${s.speculated} straggling tiles copied (${s.speculativeWins} copies won)${s.recovered > 0 ? `; ${s.recovered} recovered from an earlier coordinator` : ''}; verification ${verifyText(this.spec.verify)}: ${verifySummary(coordinator.verifyFigures)}`)
  }
}

/** What the client hears of how its job runs, where that is more than one phase of tiles. */
function planNotes (coordinator: JobCoordinator): string[] {
  const { plan } = coordinator
  const notes: string[] = []
  if (plan.prelude.length > 0) notes.push(`${plan.prelude.map(s => s.operation.name).join(', ')} on the whole image (each worker once), then tiles of ${plan.width}x${plan.height}`)
  if (plan.phases.length > 1) {
    const summaries = plan.phases.filter(p => p.summarises !== undefined).map(p => p.summarises!.operation.name)
    notes.push(`${plan.phases.length} phases of ${coordinator.tiles.length} tiles: ${summaries.map(n => `${n} (whole-image summary)`).join(', ')}, then the pixels; progress counts tiles of every phase`)
  }
  return notes
}
