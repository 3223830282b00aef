import { JOBS_TOPIC } from '../src/protocol/constants.ts'
import { SwarmPeer, type PeerOptions } from '../src/swarm/peer.ts'

export interface ClusterOptions extends Partial<PeerOptions> {
  /** Keep each peer's log lines (for failure messages). */
  keepLogs?: boolean
}

/**
 * N real libp2p peers in this process, on loopback, bootstrapped to the first.
 * The swarm's tests and the simulator both use it.
 */
export class Cluster {
  readonly peers: SwarmPeer[] = []
  readonly logs = new Map<SwarmPeer, string[]>()
  private readonly options: ClusterOptions

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

  async addPeer (overrides: Partial<PeerOptions> = {}): Promise<SwarmPeer> {
    const lines: string[] = []
    const peer = await SwarmPeer.start({
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: this.bootstrap,
      slots: 1,
      heartbeatMs: 50,
      announceMs: 100,
      helloMs: 200,
      log: this.options.keepLogs === true ? line => { lines.push(line) } : undefined,
      ...this.options,
      ...overrides,
    })
    this.logs.set(peer, lines)
    this.peers.push(peer)
    return peer
  }

  /** Resolves once every live peer sees at least one other peer on the jobs topic. */
  async waitForMesh (timeoutMs = 10_000): Promise<void> {
    const live = this.peers.filter(p => p.node.status === 'started')
    if (live.length < 2) return
    await until(() => live.every(p => p.node.services.pubsub.getSubscribers(JOBS_TOPIC).length > 0),
      live.map(p => p.node.services.pubsub), ['subscription-change', 'gossipsub:heartbeat'], timeoutMs, 'gossip mesh')
  }

  async stop (): Promise<void> {
    await Promise.allSettled(this.peers.map(async p => { await p.stop() }))
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
