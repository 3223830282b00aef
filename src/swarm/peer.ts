import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, PrivateKey, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import sharp from 'sharp'
import { LimitExceededError, ProtocolError, SubmitRefusedError, TileswarmError, oneLine } from '../errors.ts'
import { decodeImageBands, encodeImage, release, resolvePipeline, tileCount, DEFAULT_MAX_PIXELS, DEFAULT_TILE_SIZE, type BandedImage, type OutputFormat } from '../imaging/index.ts'
import { JobCoordinator } from '../job/coordinator.ts'
import { serveTileSession } from '../job/session.ts'
import { createSwarmNode, type SwarmNode } from '../net/node.ts'
import { loadOrCreateKey, lockDataDir } from '../net/identity.ts'
import { DEFAULT_MAX_UPLOAD_BYTES, JOBS_TOPIC, MAX_ADDRS, PEERS_TOPIC, SUBMIT_PROTOCOL, TILE_PROTOCOL, TOPICS } from '../protocol/constants.ts'
import { FramedChannel, memoryChannelPair, type Channel } from '../protocol/framing.ts'
import { encodeGossip, judgeGossip } from '../protocol/gossip.ts'
import { SubmitRequest, type JobsTopicMessage } from '../protocol/messages.ts'
import { Worker, type JobRef, type TileProcessor, type WorkerFaults } from '../worker/worker.ts'

export const DEFAULT_LEASE_MS = 5000
export const DEFAULT_MAX_JOBS = 4
export const DEFAULT_MAX_TILES = 100_000
export const MIN_TILE_SIZE = 16
export const MAX_TILE_SIZE = 4096
/** A tile result is at most MAX_TILE_SIZE^2 RGBA 16-bit pixels. */
const MAX_TILE_BODY_BYTES = MAX_TILE_SIZE * MAX_TILE_SIZE * 8
const UPLOAD_IDLE_MS = 30_000
/** Connections a peer seeks through hellos (bootstrap and job traffic add their own). */
const DISCOVERY_TARGET_PEERS = 8
const PROGRESS_HEARTBEAT_MS = 5_000

export interface PeerOptions {
  listen: string[]
  bootstrap: string[]
  /** Keeps the identity key; without it the peer id is new each start. */
  dataDir?: string
  privateKey?: PrivateKey
  slots?: number
  tileSize?: number
  leaseMs?: number
  maxPixels?: number
  maxUploadBytes?: number
  maxJobs?: number
  maxTiles?: number
  heartbeatMs?: number
  /** Re-announce a job with tiles in the pool this often, for peers that joined late. */
  announceMs?: number
  helloMs?: number
  parkMs?: number
  dialTimeoutMs?: number
  log?: (line: string) => void
  /** The simulator's cost model; real pixels by default. */
  process?: TileProcessor
  /** Fault injection (the simulator): result streams dropped, peers blocked. */
  faults?: WorkerFaults
  blocked?: Set<string>
  /** The pre-shared key of a private swarm (libp2p pnet). */
  swarmKey?: Uint8Array
  /** Peer ids allowed to submit jobs here; everyone in the swarm when unset. */
  allowSubmit?: Set<string>
  /** An upload that sends nothing for this long is dropped. */
  uploadIdleMs?: number
}

interface ActiveJob {
  coordinator: JobCoordinator
  announceTimer?: NodeJS.Timeout
  lastAnnounce: number
}

/**
 * A tileswarm peer: a libp2p node, a worker with `slots` lanes, and a
 * coordinator for every job submitted to it.
 */
export class SwarmPeer {
  readonly node: SwarmNode
  readonly worker: Worker
  readonly jobs = new Map<string, ActiveJob>()
  /** 'job' (detail: the JobCoordinator) when this peer starts coordinating one. */
  readonly events = new EventTarget()
  readonly options: Required<Pick<PeerOptions, 'slots' | 'tileSize' | 'leaseMs' | 'maxPixels' | 'maxUploadBytes' | 'maxJobs' | 'maxTiles' | 'announceMs' | 'helloMs'>> & PeerOptions
  private readonly unlock: (() => Promise<void>) | undefined
  private helloTimer: NodeJS.Timeout | undefined
  private stopping = false
  private readonly log: (line: string) => void

  private constructor (node: SwarmNode, options: SwarmPeer['options'], unlock: (() => Promise<void>) | undefined) {
    this.node = node
    this.options = options
    this.unlock = unlock
    this.log = options.log ?? (() => {})
    this.worker = new Worker({
      peerId: this.peerId,
      slots: options.slots,
      connect: async ref => await this.connect(ref),
      log: this.log,
      parkMs: options.parkMs,
      process: options.process,
      faults: options.faults,
    })
  }

  static async start (init: PeerOptions): Promise<SwarmPeer> {
    const options = {
      slots: availableParallelism(),
      tileSize: DEFAULT_TILE_SIZE,
      leaseMs: DEFAULT_LEASE_MS,
      maxPixels: DEFAULT_MAX_PIXELS,
      maxUploadBytes: DEFAULT_MAX_UPLOAD_BYTES,
      maxJobs: DEFAULT_MAX_JOBS,
      maxTiles: DEFAULT_MAX_TILES,
      announceMs: 1000,
      helloMs: 5000,
      ...init,
    }
    const unlock = options.dataDir !== undefined ? await lockDataDir(options.dataDir) : undefined
    try {
      const privateKey = options.privateKey ?? (options.dataDir !== undefined ? await loadOrCreateKey(options.dataDir) : undefined)
      const node = await createSwarmNode({ privateKey, listen: options.listen, bootstrap: options.bootstrap, heartbeatMs: options.heartbeatMs, dialTimeoutMs: options.dialTimeoutMs, blocked: options.blocked, swarmKey: options.swarmKey })
      const peer = new SwarmPeer(node, options, unlock)
      await peer.wire()
      return peer
    } catch (err) {
      await unlock?.()
      throw err
    }
  }

  get peerId (): string { return this.node.peerId.toString() }

  addrs (): string[] {
    return this.node.getMultiaddrs().map(a => a.toString()).slice(0, MAX_ADDRS)
  }

  private async wire (): Promise<void> {
    const { node } = this
    // One slot is one tile at a time on one libvips thread: slots are how a peer uses its cores.
    sharp.concurrency(1)
    await node.handle(SUBMIT_PROTOCOL, ({ stream, connection }) => { void this.handleSubmit(stream, connection) }, { maxInboundStreams: 8 })
    await node.handle(TILE_PROTOCOL, ({ stream, connection }) => { this.serveTiles(new FramedChannel(stream, { maxBodyBytes: MAX_TILE_BODY_BYTES }), connection.remotePeer.toString()) }, { maxInboundStreams: 256 })
    const pubsub = node.services.pubsub
    // The validator judges each message once; delivery reuses its verdict.
    const verdicts = new WeakMap<object, ReturnType<typeof judgeGossip>>()
    for (const topic of TOPICS) {
      pubsub.topicValidators.set(topic, (_peer, message) => {
        const judged = judgeGossip(message)
        verdicts.set(message, judged)
        if (judged.verdict !== 'accept') this.log(`ignored a gossip message on ${topic}: ${judged.reason}`)
        return judged.verdict
      })
      pubsub.subscribe(topic)
    }
    pubsub.addEventListener('message', evt => {
      const judged = verdicts.get(evt.detail) ?? judgeGossip(evt.detail)
      if (judged.verdict !== 'accept') return
      const { message } = judged
      if (message.topic === JOBS_TOPIC) this.onJobGossip(message.msg)
      else void this.onHello(message.msg.peerId, message.msg.addrs)
    })
    node.addEventListener('peer:connect', evt => { this.log(`peer joined ${evt.detail.toString()}`) })
    node.addEventListener('peer:disconnect', evt => {
      const id = evt.detail.toString()
      this.log(`peer left ${id}`)
      for (const job of this.jobs.values()) job.coordinator.peerGone(id)
    })
    this.worker.start()
    this.scheduleHello()
  }

  private onJobGossip (msg: JobsTopicMessage): void {
    if (msg.coordinator === this.peerId) return
    if (msg.type === 'announce') {
      if (msg.pending > 0) this.worker.addJob({ jobId: msg.jobId, coordinator: msg.coordinator, addrs: msg.addrs })
    } else {
      this.worker.jobFinished(msg.jobId)
    }
  }

  private discoveryDials = 0

  /**
   * Peers learn of each other through the swarm, not only through bootstrap,
   * up to a few connections each: enough to keep gossip flowing if the
   * bootstrap peer goes, not a full mesh (its cost grows with the square of
   * the swarm). Workers dial a job's coordinator directly in any case.
   */
  private async onHello (peerId: string, addrs: string[]): Promise<void> {
    if (peerId === this.peerId || this.stopping) return
    const id = peerIdFromString(peerId)
    if (this.node.getConnections(id).length > 0) return
    if (this.node.getConnections().length + this.discoveryDials >= DISCOVERY_TARGET_PEERS) return
    this.discoveryDials++
    try {
      await this.node.peerStore.merge(id, { multiaddrs: addrs.map(a => multiaddr(a)) })
      await this.node.dial(id, { signal: AbortSignal.timeout(this.options.dialTimeoutMs ?? 10_000) })
    } catch (err) {
      this.log(`could not reach ${peerId}: ${oneLine((err as Error).message)}`)
    } finally {
      this.discoveryDials--
    }
  }

  /** Jittered (0.5x to 1.5x the period), so peers started together do not all speak at once. */
  private scheduleHello (): void {
    if (this.stopping) return
    this.helloTimer = setTimeout(() => {
      this.hello()
      this.scheduleHello()
    }, this.options.helloMs * (0.5 + Math.random()))
    this.helloTimer.unref()
  }

  private hello (): void {
    void this.publish(PEERS_TOPIC, { type: 'hello', v: 1, peerId: this.peerId, addrs: this.addrs(), slots: this.options.slots })
  }

  /** Gossip messages this peer published (the simulator's summary). */
  published = 0

  private async publish (topic: string, msg: Parameters<typeof encodeGossip>[0]): Promise<void> {
    this.published++
    try {
      await this.node.services.pubsub.publish(topic, encodeGossip(msg))
    } catch (err) {
      if (!this.stopping) this.log(`gossip on ${topic} failed: ${oneLine((err as Error).message)}`)
    }
  }

  private announce (job: ActiveJob): void {
    const c = job.coordinator
    if (!c.isRunning || this.stopping) return
    job.lastAnnounce = performance.now()
    void this.publish(JOBS_TOPIC, { type: 'announce', v: 1, jobId: c.jobId, coordinator: this.peerId, addrs: this.addrs(), tiles: c.tiles.length, pending: c.leases.pendingCount, leaseMs: c.leases.leaseMs })
    this.worker.addJob({ jobId: c.jobId, coordinator: this.peerId, addrs: [] })
  }

  /** A worker's tile session with the jobs coordinated here, over the network or in memory. */
  private serveTiles (channel: Channel, worker: string): void {
    void serveTileSession(channel, worker, id => this.jobs.get(id)?.coordinator, { idleTimeoutMs: Math.max(60_000, 3 * this.options.leaseMs), log: this.log })
  }

  /** The coordinator's own worker reaches it in memory (no framing, no copies); others dial it directly. */
  private async connect (ref: JobRef): Promise<Channel> {
    if (ref.coordinator === this.peerId) {
      const [mine, theirs] = memoryChannelPair()
      this.serveTiles(theirs, this.peerId)
      return mine
    }
    const id = peerIdFromString(ref.coordinator)
    if (ref.addrs.length > 0) await this.node.peerStore.merge(id, { multiaddrs: ref.addrs.map(a => multiaddr(a)) })
    const stream = await this.node.dialProtocol(id, TILE_PROTOCOL, { signal: AbortSignal.timeout(this.options.dialTimeoutMs ?? 10_000) })
    return new FramedChannel(stream, { maxBodyBytes: MAX_TILE_BODY_BYTES })
  }

  private async handleSubmit (stream: Stream, connection: Connection): Promise<void> {
    const channel = new FramedChannel(stream, { maxBodyBytes: this.options.maxUploadBytes })
    const client = connection.remotePeer.toString()
    let job: ActiveJob | undefined
    let input: BandedImage | undefined
    let outcome: 'done' | 'failed' | 'cancelled' = 'failed'
    try {
      if (this.stopping) throw new TileswarmError('this peer is shutting down; submit to another')
      if (this.options.allowSubmit !== undefined && !this.options.allowSubmit.has(client)) {
        throw new SubmitRefusedError(`peer ${client} may not submit jobs to this peer (--allow-submit); ask its operator to add your peer id (tileswarm id --data-dir <dir>)`)
      }
      if (this.jobs.size >= this.options.maxJobs) throw new LimitExceededError(`this peer coordinates ${this.jobs.size} jobs already, its limit (--max-jobs); try again or submit to another peer`)
      const upload = await channel.receive({ timeoutMs: this.options.uploadIdleMs ?? UPLOAD_IDLE_MS })
      const { header } = upload
      const parsed = SubmitRequest.safeParse(header)
      if (!parsed.success) throw new ProtocolError(`malformed submission: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`)
      const request = parsed.data
      const steps = resolvePipeline(request.ops)
      const tileSize = request.tileSize ?? this.options.tileSize
      if (tileSize < MIN_TILE_SIZE || tileSize > MAX_TILE_SIZE) throw new LimitExceededError(`Expected integer between ${MIN_TILE_SIZE} and ${MAX_TILE_SIZE} for tile size but received ${tileSize}`)
      const { bands, notes } = await decodeImageBands(upload.body ?? Buffer.alloc(0), { maxPixels: this.options.maxPixels, bandRows: tileSize })
      // The file's bytes are not needed past decoding: freed at once, not at a collection. The coordinator takes the pixels.
      release(upload.body)
      upload.body = undefined
      input = bands
      const tiles = tileCount(bands.width, bands.height, tileSize)
      if (tiles > this.options.maxTiles) throw new LimitExceededError(`${tiles} tiles of ${tileSize} px is over this peer's limit of ${this.options.maxTiles} (--max-tiles); use a larger tile size`)
      // Another submission may have taken the last place while this one uploaded.
      if (this.jobs.size >= this.options.maxJobs) throw new LimitExceededError(`this peer coordinates ${this.jobs.size} jobs already, its limit (--max-jobs)`)
      const jobId = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`
      const coordinator = new JobCoordinator({ jobId, input: bands, steps, tileSize, leaseMs: this.options.leaseMs, parkMs: this.options.parkMs })
      job = { coordinator, lastAnnounce: 0 }
      this.jobs.set(jobId, job)
      this.events.dispatchEvent(new CustomEvent('job', { detail: coordinator }))
      const started = performance.now()
      this.log(`job ${jobId}: coordinating ${coordinator.tiles.length} tiles of ${bands.width}x${bands.height} for ${client}`)
      await channel.send({ type: 'accepted', jobId, width: bands.width, height: bands.height, tiles: coordinator.tiles.length, tileSize, halo: coordinator.halo, notes })
      let lastProgress = 0
      const sendProgress = (): void => {
        lastProgress = performance.now()
        void channel.send({ type: 'progress', done: coordinator.leases.completed, total: coordinator.tiles.length, workers: coordinator.tilesByPeer.size }).catch(() => {})
      }
      coordinator.on('progress', (done, total) => { if (done === total || performance.now() - lastProgress > 100) sendProgress() })
      const current = job
      // Returned tiles are announced at once, but not more often than a few times a second: every announcement costs every peer a signature check.
      const minGapMs = Math.max(250, this.options.announceMs / 4)
      coordinator.on('tilesReturned', () => { if (performance.now() - current.lastAnnounce > minGapMs) this.announce(current) })
      job.announceTimer = setInterval(() => {
        if (coordinator.leases.pendingCount > 0) this.announce(current)
        if (performance.now() - lastProgress > PROGRESS_HEARTBEAT_MS) sendProgress()
      }, this.options.announceMs)
      job.announceTimer.unref()
      this.announce(job)
      // The client hanging up (or speaking out of turn) ends the job.
      void channel.receive({ timeoutMs: 24 * 3600 * 1000 }).then(
        () => { coordinator.cancel(new ProtocolError('client spoke out of turn')) },
        () => { coordinator.cancel(new TileswarmError('the client went away')) })
      const output = await coordinator.finished
      const encoded = await encodeImage(output, { format: request.format as OutputFormat, quality: request.quality })
      release(output.data)
      const s = coordinator.leases.stats
      await channel.send({
        type: 'result',
        width: output.width,
        height: output.height,
        tilesByPeer: Object.fromEntries(coordinator.tilesByPeer),
        leases: { granted: s.granted, expired: s.expired, released: s.released, duplicates: s.duplicates },
      }, encoded)
      outcome = 'done'
      this.log(`job ${jobId}: done in ${((performance.now() - started) / 1000).toFixed(2)} s; tiles by peer: ${[...coordinator.tilesByPeer].map(([p, n]) => `${p.slice(-6)}=${n}`).join(' ')}; leases expired ${s.expired}, released ${s.released}`)
      await channel.close()
    } catch (err) {
      const e = err as Error
      if (job !== undefined) job.coordinator.cancel(e)
      input?.dropAll()
      outcome = job?.coordinator.isRunning === false && this.stopping ? 'cancelled' : 'failed'
      const name = err instanceof TileswarmError ? e.name : 'InternalError'
      if (!(err instanceof TileswarmError)) this.log(`submission from ${client} failed: ${e.stack ?? e.message}`)
      else this.log(`submission from ${client} refused: ${oneLine(e.message)}`)
      await channel.send({ type: 'error', name, message: oneLine(e.message) }).catch(() => {})
      await channel.close().catch(() => {})
    } finally {
      if (job !== undefined) {
        clearInterval(job.announceTimer)
        this.jobs.delete(job.coordinator.jobId)
        void this.publish(JOBS_TOPIC, { type: 'finished', v: 1, jobId: job.coordinator.jobId, coordinator: this.peerId, outcome })
        this.worker.jobFinished(job.coordinator.jobId)
      }
    }
  }

  /** SIGINT/SIGTERM: stop claiming, hand leases back, fail coordinated jobs clearly, leave. */
  async stop (): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    clearTimeout(this.helloTimer)
    await this.worker.stop()
    for (const job of this.jobs.values()) job.coordinator.cancel(new TileswarmError('the coordinating peer is shutting down; submit again to another peer'))
    // Let the cancelled jobs tell their clients and the swarm.
    const deadline = performance.now() + 2000
    while (this.jobs.size > 0 && performance.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
    await this.node.stop()
    await this.unlock?.()
  }

  /** Fault injection: gone without a goodbye. Connections are cut, nothing is handed back. */
  async crash (): Promise<void> {
    this.stopping = true
    clearTimeout(this.helloTimer)
    this.worker.abandon()
    for (const job of this.jobs.values()) job.coordinator.cancel(new TileswarmError('crashed'))
    for (const conn of this.node.getConnections()) conn.abort(new Error('crash'))
    await this.node.stop()
    await this.unlock?.()
  }
}
