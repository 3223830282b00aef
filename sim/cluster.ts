import { peerIdFromString } from '@libp2p/peer-id'
import { JOBS_TOPIC } from '../src/protocol/constants.ts'
import type { NodeOptions } from '../src/net/node.ts'
import { SwarmPeer } from '../src/swarm/peer.ts'
import type { PeerOptions } from '../src/swarm/options.ts'
import { PeerFaults } from './faults.ts'
import { costModel, imageCostModel } from './model.ts'
import { lyingProcessor, type Lies } from './liar.ts'

export interface ClusterOptions extends Partial<PeerOptions> {
  /** Keep each peer's log lines (for failure messages). */
  keepLogs?: boolean
  /** Gives each new peer its own log function (the simulator's --log). */
  logFor?: () => (line: string) => void
  /** Simulated compute: this many ns per output pixel (times the peer's slowness) on top of the real pipeline. */
  nsPerPixel?: number
}

/** What was done to a peer, for the invariants checked at the end. */
export type PeerFate = 'alive' | 'crashed' | 'hung' | 'left'

/**
 * N real libp2p peers in this process, on loopback, bootstrapped to the first.
 * The swarm's tests and the simulator both use it.
 */
export class Cluster {
  readonly peers: SwarmPeer[] = []
  readonly logs = new Map<SwarmPeer, string[]>()
  readonly fate = new Map<SwarmPeer, PeerFate>()
  /** Per-peer slowness factor for the cost model (1 = normal). */
  readonly slowness = new Map<SwarmPeer, number>()
  /** Each peer's channels, wrapped from outside for faults. */
  readonly faults = new Map<SwarmPeer, PeerFaults>()
  /** The share of its tiles each peer sends back wrong (0: none), and what it did. */
  readonly lieShare = new Map<SwarmPeer, number>()
  readonly lies = new Map<SwarmPeer, Lies>()
  /** Gossip messages each peer published (the simulator's summary). */
  readonly published = new Map<SwarmPeer, number>()
  private readonly blocked = new Map<SwarmPeer, Set<string>>()
  private readonly options: ClusterOptions
  private random: () => number = Math.random

  constructor (options: ClusterOptions = {}) {
    this.options = options
  }

  static async start (n: number, options: ClusterOptions = {}): Promise<Cluster> {
    const cluster = new Cluster(options)
    for (let i = 0; i < n; i++) await cluster.addPeer()
    await cluster.waitForMesh()
    return cluster
  }

  get bootstrap (): string[] {
    return this.peers.length === 0 ? [] : [this.peers[0]!.addrs()[0]!]
  }

  /** Seeds the randomness of flaky peers. */
  seed (random: () => number): void {
    this.random = random
  }

  async addPeer (overrides: Partial<PeerOptions> = {}): Promise<SwarmPeer> {
    const lines: string[] = []
    const blocked = new Set<string>()
    let self: SwarmPeer | undefined
    const model = this.options.nsPerPixel !== undefined
      ? {
          process: costModel(this.options.nsPerPixel, () => (self !== undefined ? this.slowness.get(self) : undefined) ?? 1),
          processImage: imageCostModel(this.options.nsPerPixel, () => (self !== undefined ? this.slowness.get(self) : undefined) ?? 1),
        }
      : {}
    const faults = new PeerFaults(() => this.random())
    const lies: Lies = { computed: 0, lied: 0 }
    // Every peer's tile compute is wrapped: any may be made to lie later.
    const inner = overrides.process ?? this.options.process ?? model.process
    const process = lyingProcessor(() => (self !== undefined ? this.lieShare.get(self) : undefined) ?? 0, () => this.random(), inner, lies)
    const peer = await SwarmPeer.start({
      connectionGater: blockedGater(blocked),
      openChannel: faults.openChannel,
      redialFirstMs: 100,
      redialMaxMs: 1000,
      ...model,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: this.bootstrap,
      slots: 1,
      heartbeatMs: 50,
      announceMs: 100,
      // The simulator is about tiles, leases and faults: jobs are tiled however small (tests of --spread auto set it).
      spread: 'always',
      helloMs: 200,
      log: this.options.keepLogs === true ? line => { lines.push(line) } : this.options.logFor?.(),
      ...this.options,
      ...overrides,
      process,
    })
    self = peer
    this.lies.set(peer, lies)
    this.faults.set(peer, faults)
    this.countPublished(peer)
    this.logs.set(peer, lines)
    this.blocked.set(peer, blocked)
    this.fate.set(peer, 'alive')
    this.peers.push(peer)
    return peer
  }

  get live (): SwarmPeer[] {
    return this.peers.filter(p => this.fate.get(p) === 'alive')
  }

  /** Wraps the node's publish from outside, to count what the peer gossips. */
  private countPublished (peer: SwarmPeer): void {
    const pubsub = peer.node.services.pubsub
    const publish = pubsub.publish.bind(pubsub)
    this.published.set(peer, 0)
    pubsub.publish = async (...args) => {
      this.published.set(peer, (this.published.get(peer) ?? 0) + 1)
      return await publish(...args)
    }
  }

  /** Gone without a goodbye: every channel and connection cut, the node stopped, leases left to the coordinator to reclaim. */
  async crash (peer: SwarmPeer): Promise<void> {
    this.fate.set(peer, 'crashed')
    this.faults.get(peer)!.crash()
    for (const conn of peer.node.getConnections()) conn.abort(new Error('crash (fault injection)'))
    await peer.node.stop()
  }

  /** Holds its leases and answers nothing, connections open. */
  hang (peer: SwarmPeer): void {
    this.fate.set(peer, 'hung')
    this.faults.get(peer)!.freeze()
  }

  /** Each tile takes `factor` times as long (cost model only). */
  slow (peer: SwarmPeer, factor: number): void {
    this.slowness.set(peer, factor)
  }

  /** Drops a result stream halfway with this probability. */
  flaky (peer: SwarmPeer, probability: number): void {
    this.faults.get(peer)!.flakiness = probability
  }

  /** Sends this share of its tiles back with a bit flipped (a result only a second computation can catch). */
  lie (peer: SwarmPeer, share: number): void {
    this.lieShare.set(peer, share)
  }

  /** A graceful leave (SIGINT): leases handed back at once. */
  async leave (peer: SwarmPeer): Promise<void> {
    this.fate.set(peer, 'left')
    await peer.stop()
  }

  /**
   * Cuts `a` off from `b` (both ways) for `ms`, then lets them reconnect:
   * their connections are aborted and new ones refused meanwhile.
   */
  async partition (a: SwarmPeer, b: SwarmPeer, ms: number): Promise<void> {
    this.blocked.get(a)!.add(b.peerId)
    this.blocked.get(b)!.add(a.peerId)
    for (const conn of a.node.getConnections(peerIdFromString(b.peerId))) conn.abort(new Error('partition (fault injection)'))
    await new Promise(resolve => setTimeout(resolve, ms))
    this.blocked.get(a)!.delete(b.peerId)
    this.blocked.get(b)!.delete(a.peerId)
  }

  /**
   * Resolves once the bootstrap peer sees every other live peer on the jobs
   * topic, and every live peer sees at least one.
   */
  async waitForMesh (timeoutMs = 20_000): Promise<void> {
    const live = this.peers.filter(p => p.node.status === 'started')
    if (live.length < 2) return
    const first = live[0]!
    await until(() => first.node.services.pubsub.getSubscribers(JOBS_TOPIC).length >= live.length - 1 &&
      live.every(p => p.node.services.pubsub.getSubscribers(JOBS_TOPIC).length > 0),
      live.map(p => p.node.services.pubsub), ['subscription-change', 'gossipsub:heartbeat'], timeoutMs, 'gossip mesh')
  }

  /** Every peer, crashed ones too: what is left of them in this process is stopped. */
  async stop (): Promise<void> {
    await Promise.allSettled(this.peers.map(async p => { await p.stop() }))
  }
}

/** Peer ids a node will neither dial nor accept: the simulator's partitions. */
function blockedGater (blocked: Set<string>): NonNullable<NodeOptions['connectionGater']> {
  const deny = (peer: { toString: () => string }): boolean => blocked.has(peer.toString())
  return {
    denyDialPeer: async peer => deny(peer),
    denyInboundEncryptedConnection: async peer => deny(peer),
    denyOutboundEncryptedConnection: async peer => deny(peer),
    denyInboundUpgradedConnection: async peer => deny(peer),
    denyOutboundUpgradedConnection: async peer => deny(peer),
  }
}

/**
 * Waits until `check()` holds, re-checking whenever one of `events` fires on
 * one of `targets`; fails after `timeoutMs`. No sleeping.
 */
export async function until (check: () => boolean, targets: EventTarget[], events: string[], timeoutMs: number, what: string): Promise<void> {
  if (check()) return
  await new Promise<void>((resolve, reject) => {
    const listener = (): void => { if (check()) done() }
    const timer = setTimeout(() => { cleanup(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)) }, timeoutMs)
    const cleanup = (): void => {
      clearTimeout(timer)
      for (const t of targets) for (const e of events) t.removeEventListener(e, listener)
    }
    const done = (): void => { cleanup(); resolve() }
    for (const t of targets) for (const e of events) t.addEventListener(e, listener)
  })
}
