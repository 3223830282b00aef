import { createHash, randomBytes } from 'node:crypto'
import { inputDigest, type InputHold, type InputStore } from './inputs.ts'
import { TilePixels } from './tile-pixels.ts'
import { sec, tellPeersMessage, toldKey, verifySummary, verifyTold } from './told.ts'
import { repeat, type Clock } from '../common/clock.ts'
import { COLLECT_WINDOW_MS, DEFAULT_ANNOUNCE_MS, PROGRESS_HEARTBEAT_MS, SPECULATE_AFTER_MEDIANS, SPECULATE_MAX_SHARE, SPECULATE_MIN_SAMPLES } from '../common/defaults.ts'
import { LimitExceededError, ProtocolError, TileswarmError, oneLine } from '../common/errors.ts'
import { bytesPerPixel, encodeImage, freeBuffer, pipelineRadius, planJob, processFile, readImageHeader, tileCount, toSpecs, type ImageHeader, type OutputFormat, type ProcessedFile, type RawImage, type Step } from '../imaging/index.ts'
import type { CostModel } from './costs.ts'
import { autoTileSize, decideSpread, swarmShape, swarmSlots, type SpreadPolicy, type SwarmView } from './spread.ts'
import { MAX_PLACED_TOLD } from '../protocol/constants.ts'
import { PROTOCOL_VERSION } from '../protocol/constants.ts'
import type { JobsTopicMessage, SubmitClientMessage, SubmitServerMessage } from '../protocol/messages.ts'
import { errorReply, type Outgoing, type Wire } from '../protocol/wire.ts'
import type { JobRef } from '../worker/coordinator-link.ts'
import { JobCoordinator } from './coordinator.ts'
import { shortId, type Log } from '../common/log.ts'
import type { LeaseTable } from './leases.ts'
import type { BatchCoordinator } from './batch.ts'
import type { TrustRecords } from './verify.ts'
import { verifyText, type VerifyLevel } from '../protocol/verify-level.ts'
import { sizeText } from '../common/units.ts'

export interface JobHostComponents {
  peerId: string
  /** What jobs cost here, per pixel: whether a job is worth spreading is weighed from it. */
  costs: CostModel
  /** This peer's slots and cores, and its connected peers' slots (and whether they are on this machine). */
  swarm: () => SwarmView
  spread: SpreadPolicy
  /** Peers of the swarm connected now: none, and a job runs on this peer alone (the client is told). */
  connectedPeers: () => number
  clock: Clock
  log: Log
  publish: (message: JobsTopicMessage) => Promise<void>
  /** This peer's addresses, for announcements: workers dial the coordinator directly. */
  addrs: () => string[]
  tiles: { register: (job: JobCoordinator | BatchCoordinator) => void, unregister: (jobId: string) => void }
  worker: { addJob: (ref: JobRef) => void, jobFinished: (jobId: string) => void }
  /** Input files by digest, and their decoded pixels: the job's input is decoded here, once, and its tiles cut from it. */
  inputs: InputStore
  /** Gets 'job' (detail: the JobCoordinator) when a job starts here, 'batch' (the BatchCoordinator) when a batch does. */
  events: EventTarget
  /** Peers this one knows, with their addresses: where a client may resume if this peer goes. */
  swarmPeers: (limit: number) => Promise<Array<{ peerId: string, addrs: string[] }>>
  /** Connects to a peer (a holder of a resumed job's tiles, so it hears of the job); failures are its own business. */
  reach: (peer: { peerId: string, addrs: string[] }) => Promise<void>
  /** What this peer has seen of others' results in the jobs it coordinated: who is checked how much, who was caught. */
  trust: TrustRecords
}

export interface JobLimits {
  maxPixels: number
  maxTiles: number
  leaseMs: number
  parkMs?: number
  announceMs?: number
  /** Decoded inputs of the jobs coordinated here, at most: a job past it is refused, and its client tries another peer. */
  inputMemoryBytes?: number
}

/** What the client asked for, checked. */
export interface JobSpec {
  steps: Step[]
  /** Chosen per job (autoTileSize) when unset. */
  tileSize?: number
  format: OutputFormat
  quality: number
  /** How much is computed twice to catch wrong results. */
  verify: VerifyLevel
  /** A job resumed after its coordinator was lost: these peers hold tiles it finished. */
  holders?: Array<{ peerId: string, addrs: string[] }>
}

/** The job's content identity: the same input (by its digest), pipeline and tile geometry give the same tiles, whoever coordinates. */
export function jobKeyOf (inputSha256: string, steps: Step[], tileSize: number): string {
  return createHash('sha256').update(`${inputSha256}\n${JSON.stringify(toSpecs(steps))}\n${tileSize}`).digest('hex')
}

export type JobOutcome = 'done' | 'failed' | 'cancelled'

/** A job coordinated here, as `tileswarm status`, the dashboard and the metrics see it. */
export interface HostedJob {
  jobId: string
  kind: 'tiles' | 'batch'
  /** The submitting client's peer id. */
  client: string
  startedAt: number
  /** Where it is: decoding, tiles (or a batch's images), encoding, sending. */
  phase: string
  /** Units (tiles of every phase, or images) finished, of all. */
  done: number
  total: number
  byPeer: Record<string, number>
  /** Units waiting for a peer to take them now (not under lease). */
  pending: number
  leases: { granted: number, expired: number, released: number }
  bytesIn: number
  bytesOut: number
  /** Tiles settled by a second computation, votes lost, computations past one a tile, peers excluded. */
  verify: { checked: number, disagreements: number, extra: number, excluded: number }
}

/** What a job coordinated here is doing now: none yet while its upload is read. */
export interface Hosted {
  readonly jobId: string
  status: () => HostedJob
  leave: (reason: Error) => void
}

/**
 * One job's whole life on the peer that coordinates it, once its upload is
 * in: decode, accept, coordinate its tiles across the swarm (announcing them
 * and reporting progress to the client), encode, deliver, and tell the swarm
 * it is over. The client hanging up cancels it; so does this peer leaving.
 * Today a job is one phase of tiles; later phases (a reduction, a second
 * pass) slot in between coordinating and encoding.
 */
export class JobHost implements Hosted {
  readonly jobId = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`
  private readonly startedAt: number
  private bytesIn = 0
  private bytesOut = 0
  private readonly c: JobHostComponents
  private readonly limits: JobLimits
  private readonly spec: JobSpec
  private readonly client: string
  private coordinator: JobCoordinator | undefined
  /** Aborted when the job is over: ends the wait on the client. */
  private readonly over = new AbortController()
  private leaving: Error | undefined
  /** What the client last heard, and when: it hears again at least every PROGRESS_HEARTBEAT_MS, whatever the phase. */
  private progress: Outgoing<Extract<SubmitServerMessage, { type: 'progress' }>> | undefined
  private progressAt = -Infinity
  private wire!: Wire<SubmitServerMessage, SubmitClientMessage>

  constructor (components: JobHostComponents, limits: JobLimits, spec: JobSpec, client: string) {
    this.c = components
    this.limits = limits
    this.spec = spec
    this.client = client
    this.startedAt = components.clock.now()
  }

  status (): HostedJob {
    const c = this.coordinator
    const s = c?.stats
    return {
      jobId: this.jobId,
      kind: 'tiles',
      client: this.client,
      startedAt: this.startedAt,
      phase: this.progress?.phase ?? 'decoding',
      done: this.progress?.done ?? 0,
      total: this.progress?.total ?? 0,
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
    this.leaving = reason
    this.coordinator?.cancel(reason)
  }

  private report (progress: Outgoing<Extract<SubmitServerMessage, { type: 'progress' }>>): void {
    // The heartbeat repeats the counts, not the tiles placed.
    const { placed: _told, ...counts } = progress
    this.progress = counts
    this.progressAt = this.c.clock.now()
    void this.wire.send(progress).catch(() => {})
  }

  /** Runs the job to its end; whatever happens, the client is told. */
  async run (wire: Wire<SubmitServerMessage, SubmitClientMessage>, upload: Buffer): Promise<JobOutcome> {
    this.wire = wire
    this.bytesIn = upload.length
    let outcome: JobOutcome = 'failed'
    let accepted = false
    let input: InputHold | undefined
    const started = this.c.clock.now()
    const stopHeartbeat = repeat(this.c.clock, PROGRESS_HEARTBEAT_MS / 5, () => {
      if (this.progress !== undefined && this.c.clock.now() - this.progressAt >= PROGRESS_HEARTBEAT_MS) this.report(this.progress)
    })
    try {
      if (this.leaving !== undefined) throw this.leaving
      // Heard from while it reads and hashes: silence means a lost coordinator.
      this.report({ type: 'progress', phase: 'decoding', done: 0, total: 0, workers: 0 })
      const header = await readImageHeader(upload, { maxPixels: this.limits.maxPixels })
      const shape = { width: header.width, height: header.height, format: header.format }
      // Planned before anything is held for it: a crop outside the image, or a resize past the limits, is refused.
      const plan = planJob(this.spec.steps, shape)
      if (plan.largestPixels > this.limits.maxPixels) {
        throw new LimitExceededError(`${[...new Set(plan.prelude.map(s => s.operation.name))].join(', ')} would make an image of ${(plan.largestPixels / 1e6).toFixed(1)} MP: over this peer's limit of ${(this.limits.maxPixels / 1e6).toFixed(1)} MP (--max-pixels)`)
      }
      const view = this.c.swarm()
      const tileSize = this.spec.tileSize ?? autoTileSize(plan.width, plan.height, swarmSlots(view))
      const tiles = tileCount(plan.width, plan.height, tileSize)
      if (tiles > this.limits.maxTiles) {
        throw new LimitExceededError(`${tiles} tiles of ${tileSize} px is over this peer's limit of ${this.limits.maxTiles} (--max-tiles); use a larger tile size`)
      }
      // Hashed here: a client's word for it could poison workers' kept results.
      const sha256 = inputDigest(upload)
      // A prelude (geometry on the whole image) holds its result too, and one image between while it runs.
      const preludeBytes = Math.min(plan.prelude.length, 2) * plan.largestPixels * Math.max(bytesPerPixel(header.format), bytesPerPixel(plan.format))
      if (this.limits.inputMemoryBytes !== undefined) this.c.inputs.checkRoom(sha256, shape, this.limits.inputMemoryBytes, preludeBytes)
      // Held (and counted against --input-memory-mb) whichever way it runs.
      input = this.c.inputs.hold(sha256, upload, shape)
      const spread = await decideSpread(this.c.costs, { plan, inputPixels: header.width * header.height, container: header.container, format: this.spec.format }, swarmShape(view, tiles, this.c.trust, this.spec.verify), this.c.spread)
      this.c.log(`job ${this.jobId}: ${spread.reason}`)
      if (spread.mode === 'whole') {
        accepted = true
        await this.runWhole(processFile(upload, this.spec.steps, { format: this.spec.format, quality: this.spec.quality, maxPixels: this.limits.maxPixels, maxRawBytes: Infinity }), header, { width: plan.width, height: plan.height, tileSize, tiles, started, note: spread.reason })
        outcome = 'done'
        return outcome
      }
      const jobKey = jobKeyOf(sha256, this.spec.steps, tileSize)
      const held = input
      // Decoded here, once, and the prelude run once: every worker gets its tiles' pixels from it.
      const readAt = this.c.clock.now()
      const pixels = new TilePixels(async () => await held.decoded(), plan)
      if (plan.prelude.length === 0) void pixels.ready.then(() => { this.c.costs.decoded(header.container, header.width * header.height, (this.c.clock.now() - readAt) * 1e6) }, () => {})
      const coordinator = new JobCoordinator({
        jobId: this.jobId,
        jobKey,
        self: this.c.peerId,
        shape,
        pixels,
        steps: this.spec.steps,
        tileSize,
        leaseMs: this.limits.leaseMs,
        parkMs: this.limits.parkMs,
        clock: this.c.clock,
        speculation: { afterMedians: SPECULATE_AFTER_MEDIANS, maxShare: SPECULATE_MAX_SHARE, minSamples: SPECULATE_MIN_SAMPLES },
        verify: { level: this.spec.verify, records: this.c.trust },
        // Workers keep only one-phase jobs' results: a job in phases has nothing to collect.
        ...(this.spec.holders !== undefined && plan.phases.length === 1 ? { collect: { holders: [...new Set([this.c.peerId, ...this.spec.holders.map(h => h.peerId)])], windowMs: COLLECT_WINDOW_MS } } : {}),
      })
      // Holders may have lost their way into the swarm with the old coordinator: call on them, so they hear of the job.
      if (plan.phases.length === 1) for (const h of this.spec.holders ?? []) if (h.peerId !== this.c.peerId) void this.c.reach(h)
      this.coordinator = coordinator
      const notes = [...header.notes, spread.reason, ...planNotes(coordinator)]
      if (this.c.connectedPeers() === 0) notes.push('this peer is connected to no other: it computes every tile itself (is the swarm up, and was this peer started with --bootstrap?)')
      if (this.leaving !== undefined) coordinator.cancel(this.leaving)
      // A file broken past its header fails the job, with the decoder's word.
      pixels.ready.catch((err: unknown) => { coordinator.cancel(err instanceof Error ? err : new Error(String(err))) })
      accepted = true
      this.c.log(`job ${this.jobId}: coordinating ${coordinator.tiles.length} tile${coordinator.tiles.length === 1 ? '' : 's'} of ${plan.width}x${plan.height}${plan.phases.length > 1 ? ` in ${plan.phases.length} phases` : ''} for ${shortId(this.client)}${this.spec.holders !== undefined && plan.phases.length === 1 ? `, resumed: collecting finished tiles from ${this.spec.holders.length} peers` : ''}`)
      coordinator.on('phase', (phase, phases, reduceMs) => {
        this.c.log(`job ${this.jobId}: phase ${phase} of ${phases} summarised and reduced (${reduceMs.toFixed(0)} ms); phase ${phase + 1} starts`)
      })
      coordinator.on('excluded', (peer, why) => {
        const wrong = coordinator.verifyFigures.excluded[peer] ?? 0
        this.c.log(`job ${this.jobId}: excluded peer ${peer}: ${why.tile === undefined ? 'its results lost a vote in an earlier job here' : `its result for tile ${why.tile} lost a vote against other peers' (${wrong} wrong)`}${why.restartPhase !== undefined ? `; its summaries were reduced on its word, so phase ${why.restartPhase + 1} on starts over` : why.redo > 0 ? `; the ${why.redo} tiles taken on its word alone are computed again` : ''}`, 'warn')
      })
      coordinator.on('recovered', (tiles, total) => {
        this.c.log(`job ${this.jobId}: recovered ${tiles} of ${total} tiles from their holders`)
        void wire.send({ type: 'recovered', tiles, total }).catch(() => {})
      })
      await wire.send({ type: 'accepted', jobId: this.jobId, width: plan.width, height: plan.height, tiles: coordinator.tiles.length, phases: plan.phases.length, tileSize, halo: coordinator.halo, notes })
      // The client hanging up (or speaking out of turn) ends the job.
      wire.receive({ signal: this.over.signal }).then(
        () => { coordinator.cancel(new ProtocolError('the client spoke out of turn')) },
        () => { if (!this.over.signal.aborted) coordinator.cancel(new ClientGoneError('the client went away')) })
      const output = await this.coordinateTiles(coordinator)
      const tilesAt = this.c.clock.now()
      // Every tile is in: the input goes before the encode (its memory, not the output's, is what the encode can have).
      pixels.release()
      input.release()
      const { total } = coordinator.progress
      const progress = { type: 'progress', done: total, total, workers: coordinator.tilesByPeer.size } as const
      this.report({ ...progress, phase: 'encoding' })
      const encoded = await encodeImage(output, { format: this.spec.format, quality: this.spec.quality })
      const encodedAt = this.c.clock.now()
      this.c.costs.encoded(this.spec.format, output.width * output.height, (encodedAt - tilesAt) * 1e6)
      freeBuffer(output.data)
      this.report({ ...progress, phase: 'sending' })
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
      outcome = 'done'
      const now = this.c.clock.now()
      // The serial parts (header, encode, send) are what more peers cannot shorten.
      this.c.log(`job ${this.jobId}: done in ${sec(now - started)} s (header and digest ${sec(readAt - started)} s, tiles ${sec(tilesAt - readAt)} s, encode ${sec(encodedAt - tilesAt)} s, send ${sec(now - encodedAt)} s), ${encoded.length} bytes delivered; tile pixels sent ${sizeText(pixels.sent.wire)} for ${sizeText(pixels.sent.raw)} raw; tiles by peer: ${[...coordinator.tilesByPeer].map(([p, n]) => `${shortId(p)}: ${n}`).join(', ')}; leases expired ${s.expired}, released ${s.released}; ${s.speculated} straggling tiles copied (${s.speculativeWins} copies won)${s.recovered > 0 ? `; ${s.recovered} recovered from an earlier coordinator` : ''}; verification ${verifyText(this.spec.verify)}: ${verifySummary(coordinator.verifyFigures)}`)
    } catch (err) {
      const e = err as Error
      this.coordinator?.cancel(e)
      // Leaving: the client resumes the job elsewhere, so it hears who is there.
      if (e === this.leaving) await this.tellPeers(true)
      outcome = e instanceof ClientGoneError || e === this.leaving ? 'cancelled' : 'failed'
      if (!(err instanceof TileswarmError)) this.c.log(`job ${this.jobId} from ${shortId(this.client)}: failed: ${e.stack ?? e.message}`, 'error')
      else this.c.log(`job ${this.jobId} from ${shortId(this.client)}: ${outcome === 'cancelled' ? 'cancelled' : accepted ? 'failed' : 'refused'}: ${oneLine(e.message)}`, outcome === 'failed' && accepted ? 'warn' : 'info')
      await wire.send(errorReply(err)).catch(() => {})
      await wire.channel.close().catch(() => {})
    } finally {
      stopHeartbeat()
      this.over.abort()
      input?.release()
      if (this.coordinator !== undefined) {
        this.c.tiles.unregister(this.jobId)
        void this.c.publish({ type: 'finished', v: PROTOCOL_VERSION, jobId: this.jobId, coordinator: this.c.peerId, outcome })
        this.c.worker.jobFinished(this.jobId)
      }
    }
    return outcome
  }

  /**
   * A job not worth sharing, in one pass here: decode, steps and encode as
   * `submit --local` runs them (one streamed libvips pipeline where there is
   * one that gives the same bytes): the same bytes the tiles would give,
   * without their copies, passes and waits.
   */
  private async runWhole (processing: Promise<ProcessedFile>, header: ImageHeader, job: { width: number, height: number, tileSize: number, tiles: number, started: number, note: string }): Promise<void> {
    const { wire } = this
    const { tiles, started } = job
    // Under way already; if the client goes before it is awaited, its failure is nobody's to report.
    processing.catch(() => {})
    // The job's own tile geometry all the same: a client that resumes it elsewhere asks for these tiles.
    await wire.send({ type: 'accepted', jobId: this.jobId, width: job.width, height: job.height, tiles, phases: 1, tileSize: job.tileSize, halo: pipelineRadius(this.spec.steps), notes: [...header.notes, job.note] })
    this.report({ type: 'progress', phase: 'tiles', done: 0, total: tiles, workers: 1 })
    const processed = await processing
    const encoded = processed.data
    if (this.leaving !== undefined) throw this.leaving
    this.report({ type: 'progress', phase: 'sending', done: tiles, total: tiles, workers: 1 })
    const processedAt = this.c.clock.now()
    await wire.send({ type: 'result', width: processed.width, height: processed.height, tilesByPeer: { [this.c.peerId]: tiles }, leases: { granted: 0, expired: 0, released: 0, duplicates: 0, speculated: 0, recovered: 0 } }, encoded)
    this.bytesOut = encoded.length
    await wire.channel.close()
    this.c.log(`job ${this.jobId}: done in ${sec(this.c.clock.now() - started)} s as one pipeline (decode, operation and encode ${sec(processedAt - started)} s, send ${sec(this.c.clock.now() - processedAt)} s), ${encoded.length} bytes delivered`)
  }

  private toldPeers = ''

  /** Who else is there and who holds this job's finished tiles, when that changed (or `always`). */
  private async tellPeers (always = false): Promise<void> {
    const coordinator = this.coordinator
    if (coordinator === undefined) return
    // Only a one-phase job's tiles are kept by the peers that computed them.
    const message = await tellPeersMessage(this.c, coordinator.plan.phases.length === 1 ? [...coordinator.tilesByPeer.keys()] : [])
    const told = toldKey(message)
    if (told === this.toldPeers && !always) return
    this.toldPeers = told
    await this.wire.send(message).catch(() => {})
  }

  /** The tile phase: announce, hand out, collect; progress to the client as tiles land. */
  private async coordinateTiles (coordinator: JobCoordinator): Promise<RawImage> {
    const { clock } = this.c
    // Tiles placed since the client last heard, by who computed them: its tile map.
    let placed = new Map<string, number[]>()
    let placedCount = 0
    const sendProgress = (): void => {
      do {
        let told: Record<string, number[]> | undefined
        if (placedCount > 0) {
          told = {}
          let room = MAX_PLACED_TOLD
          for (const [peer, tiles] of placed) {
            const some = tiles.splice(0, room)
            told[peer] = some
            room -= some.length
            placedCount -= some.length
            if (tiles.length === 0) placed.delete(peer)
            if (room === 0) break
          }
          if (placedCount === 0) placed = new Map()
        }
        this.report({ type: 'progress', phase: 'tiles', ...coordinator.progress, workers: coordinator.tilesByPeer.size, ...(told !== undefined ? { placed: told } : {}), ...verifyTold(coordinator.verifyFigures, this.spec.verify) })
      } while (placedCount > 0)
    }
    const announcing = startAnnouncing(this.c, this.limits.announceMs ?? DEFAULT_ANNOUNCE_MS, {
      jobId: this.jobId,
      jobKey: coordinator.jobKey,
      kind: 'tiles',
      units: () => coordinator.tiles.length,
      done: () => coordinator.phaseDone,
      running: () => coordinator.isRunning,
      leases: () => coordinator.leases,
    }, () => { void this.tellPeers() })
    // At most every 100 ms, and the last of a burst not left unsaid: tiles placed just after a report wait only for the rest of the 100 ms.
    let trailing: unknown
    const progressSoon = (done: number, total: number): void => {
      const since = clock.now() - this.progressAt
      if (done === total || since > 100) {
        clock.clearTimeout(trailing)
        trailing = undefined
        sendProgress()
      } else {
        trailing ??= clock.setTimeout(() => { trailing = undefined; if (coordinator.isRunning) sendProgress() }, 100 - since)
      }
    }
    coordinator.on('progress', progressSoon)
    // Checks settle after their tiles: the client hears of them, and at once of a peer excluded (its tiles may go back).
    coordinator.on('verified', () => { const { done, total } = coordinator.progress; progressSoon(done, total) })
    coordinator.on('excluded', () => { if (coordinator.isRunning) sendProgress() })
    // A peer's first finished tile makes it a holder: the client hears at once, in case this peer dies next.
    coordinator.on('placed', (tile, by) => {
      const tiles = placed.get(by) ?? []
      tiles.push(coordinator.phase * coordinator.tiles.length + tile)
      placed.set(by, tiles)
      placedCount++
      if (by !== this.c.peerId && coordinator.tilesByPeer.get(by) === 1) void this.tellPeers()
    })
    coordinator.on('tilesReturned', () => { announcing.soon() })
    this.c.tiles.register(coordinator)
    this.c.events.dispatchEvent(new CustomEvent('job', { detail: coordinator }))
    sendProgress()
    void this.tellPeers(true)
    announcing.announce()
    try {
      return await coordinator.finished
    } finally {
      clock.clearTimeout(trailing)
      announcing.stop()
    }
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

/** What is announced of a job (tiled or a batch): its units and their leases. */
export interface Announced {
  jobId: string
  jobKey: string
  kind: 'tiles' | 'batch'
  units: () => number
  /** Units finished (of the current phase's). */
  done: () => number
  running: () => boolean
  leases: () => LeaseTable
}

/**
 * A job's announcements on the jobs topic, this peer's own worker told of
 * each too: `announce` now; on a timer while units are pending (`tick` runs
 * on it as well); `soon` when units come back, but not more often than a few
 * times a second, as every announcement costs every peer a signature check.
 */
export function startAnnouncing (c: JobHostComponents, announceMs: number, job: Announced, tick: () => void): { announce: () => void, soon: () => void, stop: () => void } {
  let last = -Infinity
  const minGapMs = Math.max(250, announceMs / 4)
  const announce = (): void => {
    if (!job.running()) return
    last = c.clock.now()
    const leases = job.leases()
    void c.publish({ type: 'announce', v: PROTOCOL_VERSION, jobId: job.jobId, jobKey: job.jobKey, kind: job.kind, coordinator: c.peerId, addrs: c.addrs(), tiles: job.units(), pending: leases.pendingCount, done: job.done(), leaseMs: leases.leaseMs })
    c.worker.addJob({ jobId: job.jobId, coordinator: c.peerId, addrs: [], jobKey: job.jobKey })
  }
  const stop = repeat(c.clock, announceMs, () => {
    if (job.leases().pendingCount > 0) announce()
    tick()
  })
  return { announce, soon: () => { if (c.clock.now() - last > minGapMs) announce() }, stop }
}

/** The client hung up: the job is cancelled, not failed. */
export class ClientGoneError extends TileswarmError {
  static override readonly name = 'ClientGoneError'
}
