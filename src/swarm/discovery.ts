import { availableParallelism } from 'node:os'
import type { IdentifyResult, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { VERSION } from '../common/version.ts'
import { repeat, type Clock } from '../common/clock.ts'
import { ALONE_WARN_MS, DEFAULT_DIAL_TIMEOUT_MS, DISCOVERY_TARGET_PEERS, PEER_FORGET_MS, MAX_KNOWN_PEERS, REDIAL_FIRST_MS, REDIAL_MAX_MS } from '../common/defaults.ts'
import { oneLine } from '../common/errors.ts'
import { shortId, type Log } from '../common/log.ts'
import { isLoopback, parsePeerAddress } from '../net/address.ts'
import { dialPeer } from '../net/dial.ts'
import type { SwarmNode } from '../net/node.ts'
import { MAX_ADDRS, PROTOCOL_VERSION, TILE_PROTOCOL } from '../protocol/constants.ts'
import type { PeerHello, PeerView } from '../protocol/messages.ts'
import type { Startable } from '../common/startable.ts'
import type { SwarmView } from '../job/spread.ts'

export interface DiscoveryComponents {
  node: SwarmNode
  peerId: string
  log: Log
  clock: Clock
  random: () => number
  addrs: () => string[]
  /** Tiles and images this peer's worker has done: said in its hello. */
  done: () => number
  /** The process's CPU (percent of one core since last asked) and resident memory: said in its hello. */
  load?: () => { cpu: number, rssBytes: number }
  publish: (hello: PeerHello) => Promise<void>
}

export interface DiscoveryOptions {
  bootstrap: string[]
  slots: number
  helloMs: number
  dialTimeoutMs?: number
  /** Re-dials of a lost peer back off from the first delay to the last, doubling. */
  redialFirstMs?: number
  redialMaxMs?: number
  /** A peer that has found no other this long after it starts says so. */
  aloneWarnMs?: number
  /** Said in hellos: this peer has a scale-out hook; the peer whose hook started this one. */
  scaler?: boolean
  scaledBy?: string
}

/** How often, at most, a peer looks whether a peer it keeps trying to reach is due a dial. */
const TICK_MS = 1000

/** A peer this one keeps trying to reach while it is cut off: a bootstrap address, or a peer it heard from. */
interface Target {
  bootstrap: boolean
  /** What to dial: the bootstrap address, or the peer's id (its addresses are in the peer store). */
  dial: Multiaddr | PeerId
  /** Known once a bootstrap address without /p2p/ has answered. */
  peerId?: string
  /** Where it listens, as it said in its hello. */
  addrs: string[]
  /** When the current connection to it began: one that lasts resets the backoff, a short one does not. */
  connectedAt?: number
  label: string
  failures: number
  nextAt: number
  dialing: boolean
}

/**
 * How a peer finds the swarm and stays in it: it dials its bootstrap peers,
 * says hello on the peers topic and dials a few of the peers it hears from,
 * and when it loses its bootstrap peers (or every peer) it dials them again
 * with a backoff, saying when it is alone and when it is back.
 */
export class Discovery implements Startable {
  private readonly c: DiscoveryComponents
  private readonly options: Required<Omit<DiscoveryOptions, 'scaler' | 'scaledBy'>> & Pick<DiscoveryOptions, 'scaler' | 'scaledBy'>
  private readonly targets: Target[] = []
  private readonly known = new Map<string, Target>()
  private discoveryDials = 0
  private alone = false
  /** Peers connected now that run the swarm's protocols: a submitting client is not one. */
  private readonly swarmPeers = new Set<string>()
  private everConnected = false
  /** What each peer said in its last hello, and when this peer heard it. */
  private readonly heard = new Map<string, { hello: PeerHello, at: number }>()
  private readonly lastConnected = new Map<string, number>()
  private startedAt = 0
  private warnedAlone = false
  private stopped = false
  /** Aborted on stop: a dial under way ends with the peer's stop, not at its timeout. */
  private readonly stopping = new AbortController()
  private helloTimer: unknown
  private stopTicking: (() => void) | undefined

  constructor (components: DiscoveryComponents, options: DiscoveryOptions) {
    this.c = components
    this.options = {
      ...options,
      dialTimeoutMs: options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
      redialFirstMs: options.redialFirstMs ?? REDIAL_FIRST_MS,
      redialMaxMs: options.redialMaxMs ?? REDIAL_MAX_MS,
      aloneWarnMs: options.aloneWarnMs ?? ALONE_WARN_MS,
    }
    for (const text of options.bootstrap) {
      const addr = parsePeerAddress(text, '--bootstrap')
      const id = addr.getPeerId() ?? undefined
      this.targets.push({ bootstrap: true, dial: addr, ...(id !== undefined ? { peerId: id } : {}), label: `bootstrap ${text}`, addrs: [], failures: 0, nextAt: 0, dialing: false })
    }
  }

  /** A connection is a peer of the swarm once identify says it serves the tile protocol. */
  private readonly onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
    const id = evt.detail.peerId.toString()
    if (!evt.detail.protocols.includes(TILE_PROTOCOL) || this.swarmPeers.has(id) || this.c.node.getConnections(evt.detail.peerId).length === 0) return
    this.swarmPeers.add(id)
    this.c.log(`peer joined ${shortId(id)}`)
    this.everConnected = true
    if (this.alone) {
      this.alone = false
      this.c.log(`back in the swarm: connected to ${this.swarmPeers.size} peer(s)`)
    }
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    if (this.swarmPeers.delete(id)) {
      this.c.log(`peer left ${shortId(id)}`)
      this.lastConnected.delete(id)
      this.lastConnected.set(id, this.c.clock.now())
      if (this.lastConnected.size > MAX_KNOWN_PEERS) this.lastConnected.delete(this.lastConnected.keys().next().value!)
    }
    // A bootstrap peer lost after a good while is dialed again at once; one that keeps dropping us, after its backoff.
    const now = this.c.clock.now()
    for (const target of this.targets) {
      if (target.peerId !== id) continue
      if (target.connectedAt !== undefined && now - target.connectedAt >= this.options.redialMaxMs) target.failures = 0
      target.connectedAt = undefined
      target.nextAt = now + this.backoff(target.failures)
    }
    this.tick()
  }

  async start (): Promise<void> {
    const { node, log } = this.c
    node.addEventListener('peer:identify', this.onIdentify)
    node.addEventListener('peer:disconnect', this.onDisconnect)
    for (const t of this.targets) {
      if (t.peerId === undefined) log(`${t.label} has no /p2p/ peer id: whichever peer answers there is taken as the swarm (add /p2p/<id> to have it checked)`, 'warn')
    }
    if (this.targets.length === 0) log('no --bootstrap given: this peer starts a swarm; others join it with --bootstrap <one of its addresses>')
    this.startedAt = this.c.clock.now()
    this.stopTicking = repeat(this.c.clock, Math.min(TICK_MS, this.options.redialFirstMs), () => { this.tick() })
    this.tick()
    this.scheduleHello()
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.stopping.abort()
    this.stopTicking?.()
    this.c.clock.clearTimeout(this.helloTimer)
    this.c.node.removeEventListener('peer:identify', this.onIdentify)
    this.c.node.removeEventListener('peer:disconnect', this.onDisconnect)
  }

  private dialSignal (): AbortSignal {
    return AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.options.dialTimeoutMs)])
  }

  private connected (target: Target): boolean {
    return target.peerId !== undefined && this.c.node.getConnections(peerIdFromString(target.peerId)).length > 0
  }

  /** Dials every bootstrap peer not connected, and, while cut off from everyone, the peers it knew. */
  private tick (): void {
    if (this.stopped || this.c.node.status !== 'started') return
    // A client's connection is not the swarm.
    const cutOff = this.swarmPeers.size === 0
    if (cutOff && this.everConnected && !this.alone) {
      this.alone = true
      const peers = this.targets.length + this.known.size
      this.c.log(`alone: connected to no peer; jobs submitted here run on this peer only until it reconnects (${peers === 0 ? 'no peer to dial: it waits to be dialed' : `dialing ${peers} known peer(s) again`})`, 'warn')
    }
    const now = this.c.clock.now()
    if (cutOff && !this.everConnected && !this.warnedAlone && now - this.startedAt >= this.options.aloneWarnMs) {
      this.warnedAlone = true
      this.c.log(`alone for ${Math.round((now - this.startedAt) / 1000)} s: no peer has joined; jobs submitted here run on this peer only (${this.targets.length === 0 ? 'start other peers with --bootstrap <one of this peer\'s addresses>' : 'is --bootstrap right, and is that peer up?'})`, 'warn')
    }
    const due = (t: Target): boolean => !t.dialing && t.nextAt <= now && !this.connected(t)
    for (const t of this.targets) if (due(t)) void this.dial(t)
    if (cutOff) for (const t of this.known.values()) if (due(t)) void this.dial(t)
  }

  private async dial (target: Target): Promise<void> {
    target.dialing = true
    try {
      const connection = await dialPeer(this.c.node, target.dial, { signal: this.dialSignal() })
      // An address without /p2p/ is whoever answers there now (a peer restarted with a new key included).
      if (target.bootstrap && 'getPeerId' in target.dial && target.dial.getPeerId() === null) target.peerId = connection.remotePeer.toString()
      target.peerId ??= connection.remotePeer.toString()
      if (target.failures > 0 && target.bootstrap) this.c.log(`reached ${target.label} again`)
      target.connectedAt = this.c.clock.now()
    } catch (err) {
      if (this.stopped) return
      target.failures++
      const delay = this.backoff(target.failures)
      target.nextAt = this.c.clock.now() + delay
      if (target.bootstrap) this.c.log(`cannot reach ${target.label}: ${oneLine((err as Error).message)}; trying again in ${(delay / 1000).toFixed(1)} s`, 'warn')
    } finally {
      target.dialing = false
    }
  }

  /** Doubling from the first delay to the last, with a little jitter so peers that lost the same bootstrap do not all dial it at once. */
  private backoff (failures: number): number {
    if (failures === 0) return 0
    return Math.min(this.options.redialMaxMs, this.options.redialFirstMs * 2 ** (failures - 1)) * (0.8 + 0.4 * this.c.random())
  }

  /**
   * Peers learn of each other through the swarm, not only through bootstrap,
   * up to a few connections each: enough to keep gossip flowing if the
   * bootstrap peer goes, not a full mesh (its cost grows with the square of
   * the swarm). Workers dial a job's coordinator directly in any case.
   */
  async hello (msg: PeerHello): Promise<void> {
    const { node } = this.c
    if (msg.peerId === this.c.peerId || this.stopped) return
    const id = peerIdFromString(msg.peerId)
    const before = this.heard.get(msg.peerId)?.hello.addrs
    this.heard.delete(msg.peerId)
    this.heard.set(msg.peerId, { hello: msg, at: this.c.clock.now() })
    if (this.heard.size > MAX_KNOWN_PEERS) this.heard.delete(this.heard.keys().next().value!)
    const connected = node.getConnections(id).length > 0
    // Its addresses, unchanged, are not stored again: the peer store's writes are dear, and hellos come every few seconds.
    if (connected && before !== undefined && before.length === msg.addrs.length && before.every((a, i) => a === msg.addrs[i])) return
    await node.peerStore.merge(id, { multiaddrs: msg.addrs.map(a => multiaddr(a)) }).catch(() => {})
    this.remember(msg.peerId, id, msg.addrs)
    if (connected) return
    if (node.getConnections().length + this.discoveryDials >= DISCOVERY_TARGET_PEERS) return
    this.discoveryDials++
    try {
      await dialPeer(node, id, { signal: this.dialSignal() })
    } catch (err) {
      if (!this.stopped) this.c.log(`could not reach ${shortId(msg.peerId)}: ${oneLine((err as Error).message)}`, 'debug')
    } finally {
      this.discoveryDials--
    }
  }

  /**
   * Peers this one knows and where they listen, those connected now first
   * (their addresses as identify reported them): where a client may go next.
   */
  async peers (limit: number): Promise<Array<{ peerId: string, addrs: string[] }>> {
    const out = new Map<string, string[]>()
    for (const peer of this.c.node.getPeers()) {
      if (out.size >= limit) break
      const stored = await this.c.node.peerStore.get(peer).catch(() => undefined)
      const addrs = (stored?.addresses ?? []).map(a => a.multiaddr.toString()).map(a => a.includes('/p2p/') ? a : `${a}/p2p/${peer.toString()}`)
      if (addrs.length > 0) out.set(peer.toString(), addrs.slice(0, MAX_ADDRS))
    }
    for (const [peerId, target] of this.known) {
      if (out.size < limit && !out.has(peerId) && target.addrs.length > 0) out.set(peerId, target.addrs)
    }
    return [...out].map(([peerId, addrs]) => ({ peerId, addrs }))
  }

  /**
   * The swarm's peers as this one sees them: those connected now, and those
   * heard from (or connected) within the last minute, with what their hellos
   * said, newest first.
   */
  view (): PeerView[] {
    const now = this.c.clock.now()
    const ids = new Set([...this.swarmPeers, ...this.heard.keys(), ...this.lastConnected.keys()])
    const out: PeerView[] = []
    for (const id of ids) {
      const connected = this.swarmPeers.has(id)
      const heard = this.heard.get(id)
      const lastAt = connected ? now : Math.max(heard?.at ?? -Infinity, this.lastConnected.get(id) ?? -Infinity)
      if (!connected && now - lastAt > PEER_FORGET_MS) {
        this.heard.delete(id)
        this.lastConnected.delete(id)
        continue
      }
      const sinceHello = heard !== undefined ? (now - heard.at) / 1000 : 0
      out.push({
        peerId: id,
        addrs: heard?.hello.addrs ?? this.known.get(id)?.addrs ?? [],
        connected,
        ...(heard !== undefined ? { slots: heard.hello.slots, upS: Math.round(heard.hello.up + sinceHello), done: heard.hello.done } : {}),
        ...(heard?.hello.scaler === true ? { scaler: true } : {}),
        ...(heard?.hello.scaledBy !== undefined ? { scaledBy: heard.hello.scaledBy } : {}),
        ...(heard?.hello.version !== undefined ? { version: heard.hello.version } : {}),
        ...(heard?.hello.cpu !== undefined ? { cpu: heard.hello.cpu } : {}),
        ...(heard?.hello.rssBytes !== undefined ? { rssBytes: heard.hello.rssBytes } : {}),
        lastSeenS: Math.round((now - lastAt) / 1000),
      })
    }
    return out.sort((a, b) => Number(b.connected) - Number(a.connected) || a.lastSeenS - b.lastSeenS || a.peerId.localeCompare(b.peerId))
  }

  /** The swarm as a job's spread weighs it: this peer's slots and cores, each connected peer's slots (1 until its hello says) and whether it is on this machine. */
  swarmView (): SwarmView {
    const peers = this.view().filter(p => p.connected).map(p => ({
      peerId: p.peerId,
      slots: p.slots ?? 1,
      local: this.c.node.getConnections(peerIdFromString(p.peerId)).some(c => isLoopback(c.remoteAddr)),
    }))
    return { here: this.options.slots, cores: availableParallelism(), peers }
  }

  /** Connects to a peer named by someone else (a client resuming a job), if not connected already. */
  async reach (peer: { peerId: string, addrs: string[] }): Promise<void> {
    const id = peerIdFromString(peer.peerId)
    if (this.stopped || this.c.node.getConnections(id).length > 0) return
    await this.c.node.peerStore.merge(id, { multiaddrs: peer.addrs.map(a => multiaddr(a)) }).catch(() => {})
    await dialPeer(this.c.node, id, { signal: this.dialSignal() }).catch((err: Error) => {
      if (!this.stopped) this.c.log(`could not reach ${shortId(peer.peerId)}: ${oneLine(err.message)}`, 'warn')
    })
  }

  /** Peers heard from, newest last, a bounded number: what a cut-off peer dials again. */
  private remember (peerId: string, id: PeerId, addrs: string[]): void {
    const target = this.known.get(peerId) ?? { bootstrap: false, dial: id, peerId, label: `peer ${peerId}`, addrs, failures: 0, nextAt: 0, dialing: false }
    target.addrs = addrs
    this.known.delete(peerId)
    this.known.set(peerId, target)
    if (this.known.size > MAX_KNOWN_PEERS) this.known.delete(this.known.keys().next().value!)
  }

  /** Jittered (0.5x to 1.5x the period), so peers started together do not all speak at once. */
  private scheduleHello (): void {
    if (this.stopped) return
    this.helloTimer = this.c.clock.setTimeout(() => {
      this.sayHello()
      this.scheduleHello()
    }, this.options.helloMs * (0.5 + this.c.random()))
  }

  private sayHello (): void {
    const now = this.c.clock.now()
    void this.c.publish({ type: 'hello', v: PROTOCOL_VERSION, version: VERSION, peerId: this.c.peerId, addrs: this.c.addrs(), slots: this.options.slots, up: Math.floor((now - this.startedAt) / 1000), done: this.c.done(), ...(this.options.scaler === true ? { scaler: true } : {}), ...(this.options.scaledBy !== undefined ? { scaledBy: this.options.scaledBy } : {}), ...this.c.load?.() })
  }
}
