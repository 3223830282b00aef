import { availableParallelism } from 'node:os'
import sharp from 'sharp'
import { systemClock } from '../clock.ts'
import { DEFAULT_INPUT_MEMORY_BYTES, DEFAULT_ANNOUNCE_MS, DEFAULT_HELLO_MS, DEFAULT_LEASE_MS, DEFAULT_MAX_JOBS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_TILES, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_RESULT_CACHE_BYTES, DEFAULT_RESULT_CACHE_MS, DEFAULT_TILE_SIZE } from '../defaults.ts'
import { loadOrCreateKey, lockDataDir } from '../net/identity.ts'
import { createSwarmNode, type SwarmNode } from '../net/node.ts'
import { MAX_ADDRS } from '../protocol/constants.ts'
import { ResultCache } from '../worker/result-cache.ts'
import { decodeInput, InputStore } from '../worker/inputs.ts'
import { Worker } from '../worker/worker.ts'
import { framedChannel } from './channels.ts'
import { Discovery } from './discovery.ts'
import { GossipService } from './gossip.ts'
import { SubmitService } from './submit-service.ts'
import type { PeerOptions } from './options.ts'
import { TileService } from './tile-service.ts'
import { InputService } from './input-service.ts'

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
  /** Input files of the jobs coordinated or worked on here, and their decoded pixels. */
  readonly inputs: InputStore
  /** Passes job inputs on to peers the coordinators send here, and fetches them from such peers. */
  readonly inputService: InputService
  /** 'job' (detail: the JobCoordinator) when this peer starts coordinating one. */
  readonly events = new EventTarget()
  private readonly unlock: (() => Promise<void>) | undefined
  private stopping: Promise<void> | undefined

  private constructor (node: SwarmNode, options: PeerOptions, unlock: (() => Promise<void>) | undefined) {
    this.node = node
    this.unlock = unlock
    const peerId = node.peerId.toString()
    const log = options.log ?? (() => {})
    const clock = options.clock ?? systemClock
    const openChannel = options.openChannel ?? framedChannel
    const slots = options.slots ?? availableParallelism()
    const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS
    const maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES
    const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS
    this.tiles = new TileService({ node, peerId, log, openChannel }, { leaseMs, dialTimeoutMs: options.dialTimeoutMs, maxInputBytes: maxUploadBytes })
    this.inputs = new InputStore({ decode: options.decodeInput ?? decodeInput, maxPixels })
    this.inputService = new InputService({ node, inputs: this.inputs, openChannel, log }, { maxInputBytes: maxUploadBytes, dialTimeoutMs: options.dialTimeoutMs })
    this.cache = new ResultCache({ maxBytes: options.resultCacheBytes ?? DEFAULT_RESULT_CACHE_BYTES, maxAgeMs: options.resultCacheMs ?? DEFAULT_RESULT_CACHE_MS, clock })
    this.worker = new Worker({ peerId, slots, cache: this.cache, inputs: this.inputs, limits: { maxPixels, maxInputBytes: maxUploadBytes, inputMemoryBytes: options.inputMemoryBytes ?? DEFAULT_INPUT_MEMORY_BYTES }, connect: async ref => await this.tiles.connect(ref), fetchInput: async (source, input) => await this.inputService.fetch(source, input), log, clock, process: options.process, processImage: options.processImage })
    // A coordinator gone: its jobs are dropped at once (their results stay kept).
    node.addEventListener('peer:disconnect', evt => { this.worker.coordinatorGone(evt.detail.toString()) })
    this.gossip = new GossipService({ node, log }, {
      job: msg => {
        if (msg.coordinator === peerId) return
        if (msg.type === 'finished') this.worker.jobFinished(msg.jobId)
        else if (msg.pending > 0) this.worker.addJob({ jobId: msg.jobId, coordinator: msg.coordinator, addrs: msg.addrs, jobKey: msg.jobKey })
      },
      hello: msg => { void this.discovery.hello(msg) },
    })
    const publish = async (msg: Parameters<GossipService['publish']>[0]): Promise<void> => { await this.gossip.publish(msg) }
    this.discovery = new Discovery({ node, peerId, log, clock, random: options.random ?? Math.random, addrs: () => this.addrs(), publish }, {
      bootstrap: options.bootstrap,
      slots,
      helloMs: options.helloMs ?? DEFAULT_HELLO_MS,
      dialTimeoutMs: options.dialTimeoutMs,
      redialFirstMs: options.redialFirstMs,
      redialMaxMs: options.redialMaxMs,
    })
    this.submissions = new SubmitService({ node, peerId, log, clock, openChannel, publish, inputs: this.inputs, alone: () => options.onePipeline !== false && slots === 1 && this.gossip.swarmPeers() === 0, addrs: () => this.addrs(), tiles: this.tiles, worker: this.worker, events: this.events, swarmPeers: async limit => await this.discovery.peers(limit), reach: async peer => { await this.discovery.reach(peer) } }, {
      tileSize: options.tileSize ?? DEFAULT_TILE_SIZE,
      maxJobs: options.maxJobs ?? DEFAULT_MAX_JOBS,
      maxUploadBytes,
      maxPixels,
      maxTiles: options.maxTiles ?? DEFAULT_MAX_TILES,
      leaseMs,
      parkMs: options.parkMs,
      announceMs: options.announceMs ?? DEFAULT_ANNOUNCE_MS,
      allowSubmit: options.allowSubmit,
      uploadIdleMs: options.uploadIdleMs,
    })
  }

  static async start (options: PeerOptions): Promise<SwarmPeer> {
    const unlock = options.dataDir !== undefined ? await lockDataDir(options.dataDir) : undefined
    let node: SwarmNode | undefined
    try {
      const privateKey = options.privateKey ?? (options.dataDir !== undefined ? await loadOrCreateKey(options.dataDir) : undefined)
      node = await createSwarmNode({ privateKey, listen: options.listen, heartbeatMs: options.heartbeatMs, dialTimeoutMs: options.dialTimeoutMs, connectionGater: options.connectionGater, swarmKey: options.swarmKey })
      const peer = new SwarmPeer(node, options, unlock)
      // One slot is one tile at a time on one libvips thread: slots are how a peer uses its cores.
      sharp.concurrency(1)
      await peer.tiles.start()
      await peer.inputService.start()
      await peer.submissions.start()
      peer.gossip.start()
      peer.worker.start()
      peer.discovery.start()
      return peer
    } catch (err) {
      await node?.stop()
      await unlock?.()
      throw err
    }
  }

  get peerId (): string { return this.node.peerId.toString() }

  addrs (): string[] {
    return this.node.getMultiaddrs().map(a => a.toString()).slice(0, MAX_ADDRS)
  }

  /** SIGINT/SIGTERM: stop claiming, hand leases back, end coordinated jobs telling their clients, leave. */
  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      this.discovery.stop()
      await this.worker.stop(AbortSignal.timeout(2000))
      await this.submissions.stop(AbortSignal.timeout(2000))
      this.gossip.stop()
      await this.tiles.stop()
      await this.inputService.stop()
      await this.node.stop()
      await this.unlock?.()
    })()
    await this.stopping
  }
}
