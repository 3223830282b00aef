import { availableParallelism } from 'node:os'
import { sharpLib } from '../imaging/pixels/sharp-lib.ts'
import { systemClock, type Clock } from '../common/clock.ts'
import type { HostedJob, JobOutcome } from '../job/hosted.ts'
import { DEFAULT_INPUT_MEMORY_BYTES, DEFAULT_ANNOUNCE_MS, DEFAULT_HELLO_MS, DEFAULT_LEASE_MS, DEFAULT_MAX_JOBS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_TILES, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_RESULT_CACHE_BYTES, DEFAULT_RESULT_CACHE_MS } from '../common/defaults.ts'
import { loadOrCreateKey, lockDataDir } from '../net/identity.ts'
import { createSwarmNode, type SwarmNode } from '../net/node.ts'
import { isLoopbackAddr } from '../net/address.ts'
import { MAX_ADDRS } from '../protocol/constants.ts'
import { ResultCache } from '../worker/result-cache.ts'
import { decodeInput, InputStore } from '../job/inputs.ts'
import { Worker } from '../worker/worker.ts'
import { framedChannel } from './channels.ts'
import { Discovery } from './discovery.ts'
import { GossipService } from './gossip.ts'
import { SubmitService } from './submit-service.ts'
import type { PeerOptions } from './options.ts'
import { TileService } from './tile-service.ts'
import { PeerMetrics } from './metrics.ts'
import { JobDetail, StatusService, SwarmJobs, type SwarmStatus } from './status.ts'
import { PROTOCOL_VERSION } from '../protocol/constants.ts'
import { VERSION } from '../common/version.ts'
import { TrustRecords } from '../job/verify.ts'
import { Scaler } from './scaler.ts'
import { CostModel } from '../job/costs.ts'
import type { SwarmView } from '../job/spread.ts'
import { peerIdFromString } from '@libp2p/peer-id'
import { collectWhenIdle } from './idle-memory.ts'

export type { PeerOptions } from './options.ts'

/**
 * A tileswarm peer, wired: a libp2p node; gossip; discovery; the tile
 * protocol; the submit protocol, whose jobs each get a host; and a worker.
 */
export class SwarmPeer {
  readonly node: SwarmNode
  readonly worker: Worker
  readonly gossip: GossipService
  readonly discovery: Discovery
  readonly tiles: TileService
  readonly submissions: SubmitService
  /** Results this peer's worker computed for other coordinators, kept in case one dies. */
  readonly cache: ResultCache
  /** Input files of the jobs coordinated here, and their decoded pixels. */
  readonly inputs: InputStore
  /** 'job' (detail: the JobCoordinator) when this peer starts coordinating one; 'ended' when one ends. */
  readonly events = new EventTarget()
  readonly metrics = new PeerMetrics()
  /** What jobs cost here, per pixel: the jobs it coordinates are spread only where that pays. */
  readonly costs = new CostModel()
  /** What this peer has seen of others' results as a coordinator: who is checked how much, who was caught lying. */
  readonly trust = new TrustRecords()
  /** Jobs other peers announce. */
  readonly swarmJobs: SwarmJobs
  readonly statusService: StatusService
  /** Adds peers when work waits, and stops them when the swarm is idle: only with --scale-out or --scale-in. */
  readonly scaler: Scaler | undefined
  private readonly jobDetail: JobDetail
  private readonly clock: Clock
  private readonly startedAt: number
  private readonly slots: number
  private readonly listen: string[]
  private readonly unlock: (() => Promise<void>) | undefined
  private stopping: Promise<void> | undefined
  private stopCollecting: (() => void) | undefined

  private constructor (node: SwarmNode, options: PeerOptions, unlock: (() => Promise<void>) | undefined) {
    this.node = node
    this.unlock = unlock
    const peerId = node.peerId.toString()
    const log = options.log ?? (() => {})
    const clock = options.clock ?? systemClock
    this.clock = clock
    this.listen = options.listen
    this.startedAt = clock.now()
    this.swarmJobs = new SwarmJobs(clock)
    const openChannel = options.openChannel ?? framedChannel
    const slots = options.slots ?? availableParallelism()
    this.slots = slots
    const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS
    const maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES
    const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS
    this.tiles = new TileService({ node, peerId, log, openChannel }, { leaseMs, dialTimeoutMs: options.dialTimeoutMs, maxUploadBytes })
    this.inputs = new InputStore({ decode: options.decodeInput ?? decodeInput, maxPixels })
    this.cache = new ResultCache({ maxBytes: options.resultCacheBytes ?? DEFAULT_RESULT_CACHE_BYTES, maxAgeMs: options.resultCacheMs ?? DEFAULT_RESULT_CACHE_MS, clock })
    this.worker = new Worker({ peerId, slots, cache: this.cache, limits: { maxPixels }, connect: async ref => await this.tiles.connect(ref), log, clock, process: options.process, processImage: options.processImage, onComputed: (kind, ms) => { this.metrics.computed(kind, ms) } })
    // A coordinator gone: its jobs are dropped at once (their results stay kept).
    node.addEventListener('peer:disconnect', evt => { this.worker.coordinatorGone(evt.detail.toString()) })
    this.gossip = new GossipService({ node, log, clock }, {
      job: msg => {
        if (msg.coordinator === peerId) return
        this.swarmJobs.heard(msg)
        if (msg.type === 'finished') this.worker.jobFinished(msg.jobId)
        else if (msg.pending > 0) this.worker.addJob({ jobId: msg.jobId, coordinator: msg.coordinator, addrs: msg.addrs, jobKey: msg.jobKey })
      },
      hello: msg => { void this.discovery.hello(msg) },
    })
    const publish = async (msg: Parameters<GossipService['publish']>[0]): Promise<void> => { await this.gossip.publish(msg) }
    this.discovery = new Discovery({ node, peerId, log, clock, random: options.random ?? Math.random, addrs: () => this.addrs(), done: () => this.worker.computed, publish }, {
      bootstrap: options.bootstrap,
      slots,
      helloMs: options.helloMs ?? DEFAULT_HELLO_MS,
      dialTimeoutMs: options.dialTimeoutMs,
      redialFirstMs: options.redialFirstMs,
      redialMaxMs: options.redialMaxMs,
      aloneWarnMs: options.aloneWarnMs,
      scaler: options.scale?.out !== undefined,
      scaledBy: options.scaledBy,
    })
    this.submissions = new SubmitService({ node, peerId, log, clock, openChannel, publish, inputs: this.inputs, costs: this.costs, swarm: () => this.swarmView(), spread: options.scale?.out !== undefined ? 'always' : options.spread ?? 'auto', connectedPeers: () => this.gossip.swarmPeers(), addrs: () => this.addrs(), tiles: this.tiles, worker: this.worker, events: this.events, swarmPeers: async limit => await this.discovery.peers(limit), reach: async peer => { await this.discovery.reach(peer) }, trust: this.trust }, {
      ...(options.tileSize !== undefined ? { tileSize: options.tileSize } : {}),
      maxJobs: options.maxJobs ?? DEFAULT_MAX_JOBS,
      maxUploadBytes,
      maxPixels,
      maxTiles: options.maxTiles ?? DEFAULT_MAX_TILES,
      inputMemoryBytes: options.inputMemoryBytes ?? DEFAULT_INPUT_MEMORY_BYTES,
      leaseMs,
      parkMs: options.parkMs,
      announceMs: options.announceMs ?? DEFAULT_ANNOUNCE_MS,
      allowSubmit: options.allowSubmit,
      uploadIdleMs: options.uploadIdleMs,
    })
    this.scaler = options.scale?.out !== undefined || options.scale?.in !== undefined
      ? new Scaler({
        peerId,
        clock,
        log,
        slots,
        jobs: () => [...this.submissions.jobs(), ...this.swarmJobs.backlog(options.announceMs ?? DEFAULT_ANNOUNCE_MS)],
        peers: () => this.discovery.view(),
        // Peers a hook starts may be on other machines: an address off loopback if there is one.
        bootstrap: () => { const addrs = this.addrs(); return addrs.find(a => !isLoopbackAddr(a)) ?? addrs[0] },
      }, options.scale)
      : undefined
    this.jobDetail = new JobDetail({ node, clock, log })
    this.statusService = new StatusService({ node, openChannel, log, snapshot: async detail => detail ? await this.detailedStatus() : this.status() })
    this.events.addEventListener('ended', evt => {
      const { job, outcome, ms } = (evt as CustomEvent<{ job: HostedJob, outcome: JobOutcome, ms: number }>).detail
      this.metrics.ended(job, outcome, ms)
    })
    this.metrics.watch({
      totals: () => this.submissions.totals(),
      peersConnected: () => this.gossip.swarmPeers(),
      connections: () => node.getConnections().length,
      activeJobs: () => this.submissions.activeJobs,
      heldLeases: () => this.worker.heldLeases,
      cachedResultBytes: () => this.cache.stats.bytes,
      scaling: () => this.scaler,
    })
  }

  /** This peer's slots and cores, and each connected peer's slots (1 until its hello says) and whether it is on this machine. */
  private swarmView (): SwarmView {
    const peers = this.discovery.view().filter(p => p.connected).map(p => ({
      peerId: p.peerId,
      slots: p.slots ?? 1,
      local: this.node.getConnections(peerIdFromString(p.peerId)).some(c => isLoopbackAddr(c.remoteAddr)),
    }))
    return { here: this.slots, cores: availableParallelism(), peers }
  }

  /** The status, with the figures of jobs elsewhere asked of their coordinators (the dashboard's, and `tileswarm status`'s). */
  async detailedStatus (): Promise<SwarmStatus> {
    return await this.jobDetail.fill(this.status())
  }

  /** The swarm as this peer sees it: itself, its peers, the jobs it coordinates and those others announce. */
  status (): SwarmStatus {
    const now = this.clock.now()
    const here = this.submissions.jobs().map(j => ({
      jobId: j.jobId,
      kind: j.kind,
      coordinator: this.peerId,
      here: true,
      phase: j.phase,
      done: j.done,
      total: j.total,
      ageS: Math.round((now - j.startedAt) / 1000),
      byPeer: j.byPeer,
      leases: j.leases,
      client: j.client,
    }))
    return {
      v: PROTOCOL_VERSION,
      peerId: this.peerId,
      addrs: this.addrs(),
      version: VERSION,
      slots: this.slots,
      upS: Math.round((now - this.startedAt) / 1000),
      done: this.worker.computed,
      heldLeases: this.worker.heldLeases,
      activeJobs: this.submissions.activeJobs,
      peers: this.discovery.view().slice(0, 1024),
      jobs: [...here, ...this.swarmJobs.view()].slice(0, 1024),
      ...(this.scaler !== undefined ? { scaling: this.scaler.view() } : {}),
    }
  }

  static async start (options: PeerOptions): Promise<SwarmPeer> {
    const unlock = options.dataDir !== undefined ? await lockDataDir(options.dataDir) : undefined
    let node: SwarmNode | undefined
    try {
      const privateKey = options.privateKey ?? (options.dataDir !== undefined ? await loadOrCreateKey(options.dataDir) : undefined)
      node = await createSwarmNode({ privateKey, listen: options.listen, announce: options.announce, heartbeatMs: options.heartbeatMs, dialTimeoutMs: options.dialTimeoutMs, connectionGater: options.connectionGater, swarmKey: options.swarmKey })
      const peer = new SwarmPeer(node, options, unlock)
      // One slot is one tile at a time on one libvips thread: slots are how a peer uses its cores.
      sharpLib().concurrency(1)
      // No pass is ever repeated on the same pixels: libvips' cache of operations would only hold memory.
      sharpLib().cache(false)
      await peer.tiles.start()
      await peer.submissions.start()
      await peer.statusService.start()
      peer.gossip.start()
      peer.worker.start()
      peer.discovery.start()
      peer.scaler?.start()
      peer.stopCollecting = collectWhenIdle(peer.clock, () => peer.submissions.activeJobs > 0 || peer.worker.heldLeases > 0)
      return peer
    } catch (err) {
      await node?.stop()
      await unlock?.()
      throw err
    }
  }

  get peerId (): string { return this.node.peerId.toString() }

  /**
   * Where a process on this machine reaches the peer (the web page's jobs):
   * loopback first, from the listening ports too, as announced addresses
   * (--announce) may not route from here.
   */
  localAddrs (): string[] {
    const fromListen = this.listen.flatMap(l => {
      const port = /^\/ip4\/(?:0\.0\.0\.0|127\.\d+\.\d+\.\d+)\/tcp\/(\d+)$/.exec(l)?.[1]
      return port !== undefined && port !== '0' ? [`/ip4/127.0.0.1/tcp/${port}/p2p/${this.peerId}`] : []
    })
    const addrs = this.addrs()
    return [...new Set([...addrs.filter(isLoopbackAddr), ...fromListen, ...addrs.filter(a => !isLoopbackAddr(a))])]
  }

  addrs (): string[] {
    return this.node.getMultiaddrs().map(a => a.toString()).slice(0, MAX_ADDRS)
  }

  /** SIGINT/SIGTERM: stop claiming, hand leases back, end coordinated jobs telling their clients, leave. */
  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      // Beside the rest: its hooks need no node, and leases must not wait for them.
      const scaling = this.scaler?.stop()
      this.stopCollecting?.()
      this.discovery.stop()
      await this.worker.stop(AbortSignal.timeout(2000))
      await this.submissions.stop(AbortSignal.timeout(2000))
      await this.statusService.stop()
      this.gossip.stop()
      await this.tiles.stop()
      await this.node.stop()
      await scaling
      await this.unlock?.()
    })()
    await this.stopping
  }
}
