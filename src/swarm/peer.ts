import { sharpLib } from '../imaging/pixels/sharp-lib.ts'
import type { Clock } from '../common/clock.ts'
import { DEFAULT_RESULT_CACHE_BYTES, DEFAULT_RESULT_CACHE_MS } from '../common/defaults.ts'
import { startAll, stopAll, type Startable } from '../common/startable.ts'
import { loadOrCreateKey, lockDataDir } from '../net/identity.ts'
import { createSwarmNode, type SwarmNode } from '../net/node.ts'
import { isLoopback, localAddrs } from '../net/address.ts'
import { MAX_ADDRS } from '../protocol/constants.ts'
import type { JobsTopicMessage, SwarmStatus } from '../protocol/messages.ts'
import { ResultCache } from '../worker/result-cache.ts'
import { decodeInput, InputStore } from '../job/inputs.ts'
import { TrustRecords } from '../job/verify.ts'
import { CostModel } from '../job/costs.ts'
import { Worker } from '../worker/worker.ts'
import { Discovery } from './discovery.ts'
import { GossipService } from './gossip.ts'
import { IdleCollector } from './idle-memory.ts'
import { PeerMetrics } from './metrics.ts'
import { discoveryOptions, sharedSettings, submitOptions, type PeerOptions, type SharedSettings } from './options.ts'
import { peerStatus, processLoad } from './peer-status.ts'
import { Scaler } from './scaler.ts'
import { JobDetail, StatusService, SwarmJobs } from './status.ts'
import { SubmitService } from './submit-service.ts'
import { TileService } from './tile-service.ts'
import { VersionSkew } from './version-skew.ts'

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
  readonly metrics = new PeerMetrics({ events: this.events })
  /** What jobs cost here, per pixel: the jobs it coordinates are spread only where that pays. */
  readonly costs = new CostModel()
  /** What this peer has seen of others' results as a coordinator: who is checked how much, who was caught lying. */
  readonly trust = new TrustRecords()
  /** Jobs other peers announce. */
  readonly swarmJobs: SwarmJobs
  readonly statusService: StatusService
  readonly versions: VersionSkew
  /** Adds peers when work waits, and stops them when the swarm is idle: only with --scale-out or --scale-in. */
  readonly scaler: Scaler | undefined
  private readonly jobDetail: JobDetail
  private readonly clock: Clock
  private readonly startedAt: number
  private readonly slots: number
  private readonly listen: string[]
  private readonly unlock: (() => Promise<void>) | undefined
  /** Started in this order, stopped in the reverse. */
  private readonly parts: Startable[]
  private stopping: Promise<void> | undefined

  private constructor (node: SwarmNode, options: PeerOptions, unlock: (() => Promise<void>) | undefined) {
    this.node = node
    this.unlock = unlock
    const peerId = node.peerId.toString()
    const shared = sharedSettings(options)
    const { log, clock, openChannel, slots, leaseMs, maxUploadBytes, maxPixels } = shared
    this.clock = clock
    this.slots = slots
    this.listen = options.listen
    this.startedAt = clock.now()
    this.swarmJobs = new SwarmJobs(clock)
    this.tiles = new TileService({ node, peerId, log, openChannel }, { leaseMs, dialTimeoutMs: options.dialTimeoutMs, maxUploadBytes })
    this.inputs = new InputStore({ decode: options.decodeInput ?? decodeInput, maxPixels })
    this.cache = new ResultCache({ maxBytes: options.resultCacheBytes ?? DEFAULT_RESULT_CACHE_BYTES, maxAgeMs: options.resultCacheMs ?? DEFAULT_RESULT_CACHE_MS, clock })
    this.worker = new Worker({ peerId, slots, cache: this.cache, limits: { maxPixels }, connect: async ref => await this.tiles.connect(ref), log, clock, process: options.process, processImage: options.processImage, onComputed: (kind, ms) => { this.metrics.computed(kind, ms) } })
    // A coordinator gone: its jobs are dropped at once (their results stay kept).
    node.addEventListener('peer:disconnect', evt => { this.worker.coordinatorGone(evt.detail.toString(), node.getConnections().length === 0) })
    this.gossip = new GossipService({ node, log, clock }, { job: msg => { this.heardJob(msg) }, hello: msg => { void this.discovery.hello(msg) } })
    const publish = async (msg: Parameters<GossipService['publish']>[0]): Promise<void> => { await this.gossip.publish(msg) }
    this.discovery = new Discovery({ node, peerId, log, clock, random: options.random ?? Math.random, addrs: () => this.addrs(), done: () => this.worker.computed, load: processLoad(), publish }, discoveryOptions(options, shared))
    // With a scale-out hook, whose peers are on their way, every job is spread.
    const spread = options.scale?.out !== undefined ? 'always' : options.spread ?? 'auto'
    this.submissions = new SubmitService({ node, peerId, log, clock, openChannel, publish, inputs: this.inputs, costs: this.costs, swarm: () => this.discovery.swarmView(), spread, connectedPeers: () => this.gossip.swarmPeers(), addrs: () => this.addrs(), tiles: this.tiles, worker: this.worker, events: this.events, swarmPeers: async limit => await this.discovery.peers(limit), reach: async peer => { await this.discovery.reach(peer) }, trust: this.trust }, submitOptions(options, shared))
    this.scaler = this.scalerFor(options, shared)
    this.jobDetail = new JobDetail({ node, clock, log })
    this.versions = new VersionSkew({ node, log })
    this.statusService = new StatusService({ node, openChannel, log, snapshot: async detail => detail ? await this.detailedStatus() : this.status(), cancel: (jobId, by) => { this.submissions.cancel(jobId, by) }, ...(options.operatorToken !== undefined ? { operatorToken: options.operatorToken } : {}) })
    this.metrics.watch({
      totals: () => this.submissions.totals(),
      peersConnected: () => this.gossip.swarmPeers(),
      connections: () => node.getConnections().length,
      activeJobs: () => this.submissions.activeJobs,
      heldLeases: () => this.worker.heldLeases,
      cachedResultBytes: () => this.cache.stats.bytes,
      scaling: () => this.scaler,
    })
    this.parts = this.inOrder(clock, options.resultCacheMs ?? DEFAULT_RESULT_CACHE_MS)
  }

  /** With --scale-out or --scale-in. */
  private scalerFor (options: PeerOptions, { clock, log, slots, announceMs }: SharedSettings): Scaler | undefined {
    if (options.scale === undefined || (options.scale.out === undefined && options.scale.in === undefined)) return undefined
    return new Scaler({
      peerId: this.peerId,
      clock,
      log,
      slots,
      jobs: () => [...this.submissions.jobs(), ...this.swarmJobs.backlog(announceMs)],
      peers: () => this.discovery.view(),
      // Peers a hook starts may be on other machines: an address off loopback if there is one.
      bootstrap: () => { const addrs = this.addrs(); return addrs.find(a => !isLoopback(a)) ?? addrs[0] },
    }, options.scale)
  }

  /** The parts, in the order they start; they stop in the reverse. */
  private inOrder (clock: Clock, resultCacheMs: number): Startable[] {
    return [
      // First: it stops deciding before anything stops (beforeStop), and its hooks, which need no node, are waited for last.
      ...(this.scaler !== undefined ? [this.scaler] : []),
      // libp2p's, started when created (createSwarmNode): its start is then nothing.
      { start: async () => { await this.node.start() }, stop: async () => { await this.node.stop() } },
      this.versions,
      this.tiles,
      this.gossip,
      this.statusService,
      this.metrics,
      this.submissions,
      this.worker,
      this.discovery,
      // heldOutputs trims the cache of what outlived its lifetime (it asks for none).
      new IdleCollector({ clock, busy: () => this.submissions.activeJobs > 0 || this.worker.heldLeases > 0, expireAfterMs: resultCacheMs, expire: () => { this.cache.expire() } }),
    ]
  }

  /** A job announced or finished elsewhere: the swarm's view hears of it, and the worker may join it. */
  private heardJob (msg: JobsTopicMessage): void {
    if (msg.coordinator === this.peerId) return
    this.swarmJobs.heard(msg)
    if (msg.type === 'finished') this.worker.jobFinished(msg.jobId)
    else if (msg.pending > 0) this.worker.addJob({ jobId: msg.jobId, coordinator: msg.coordinator, addrs: msg.addrs, jobKey: msg.jobKey, ...(msg.submitter !== undefined ? { submitter: msg.submitter } : {}), ...(msg.priority !== undefined ? { priority: msg.priority } : {}) })
  }

  /** The status, with the figures of jobs elsewhere asked of their coordinators (the dashboard's, and `tileswarm status`'s). */
  async detailedStatus (): Promise<SwarmStatus> {
    return await this.jobDetail.fill(this.status())
  }

  /** The swarm as this peer sees it: itself, its peers, the jobs it coordinates and those others announce. */
  status (): SwarmStatus {
    const { peerId, clock, startedAt, slots, worker, submissions, swarmJobs, discovery, scaler } = this
    return { ...peerStatus({ peerId, addrs: this.addrs(), slots, clock, startedAt, worker, submissions, swarmJobs, discovery, scaler }), ...this.versions.statusFields() }
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
      await startAll(peer.parts)
      return peer
    } catch (err) {
      await node?.stop()
      await unlock?.()
      throw err
    }
  }

  get peerId (): string { return this.node.peerId.toString() }

  /** Where a process on this machine reaches the peer (the web page's jobs): loopback first. */
  localAddrs (): string[] {
    return localAddrs(this.addrs(), this.listen, this.peerId)
  }

  addrs (): string[] {
    return this.node.getMultiaddrs().map(a => a.toString()).slice(0, MAX_ADDRS)
  }

  /** SIGINT/SIGTERM: stop claiming, hand leases back, end coordinated jobs telling their clients, leave. */
  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await stopAll(this.parts)
      } finally {
        await this.unlock?.()
      }
    })()
    await this.stopping
  }
}
