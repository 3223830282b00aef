import type { PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { DEFAULT_DIAL_TIMEOUT_MS, MAX_INBOUND_TILE_STREAMS, MAX_TILE_BODY_BYTES, MIN_TILE_SESSION_IDLE_MS } from '../common/defaults.ts'
import type { JobCoordinator } from '../job/coordinator.ts'
import type { BatchCoordinator } from '../job/batch.ts'
import { serveTileSession } from '../job/tile-session.ts'
import { openStream } from '../net/dial.ts'
import { isLoopback } from '../net/address.ts'
import type { SwarmNode } from '../net/node.ts'
import { TILE_PROTOCOL } from '../protocol/constants.ts'
import { memoryChannelPair, type Channel } from '../protocol/framing.ts'
import type { JobRef } from '../protocol/job-ref.ts'
import type { OpenChannel } from './channels.ts'
import type { Log } from '../common/log.ts'
import type { Startable } from '../common/startable.ts'

export interface TileServiceComponents {
  node: SwarmNode
  peerId: string
  log: Log
  openChannel: OpenChannel
}

/**
 * The tile protocol, both ends: it serves workers' sessions with the jobs
 * coordinated here, and opens this peer's worker's sessions with any
 * coordinator (its own in memory, without framing or copies).
 */
export class TileService implements Startable {
  private readonly c: TileServiceComponents
  private readonly jobs = new Map<string, JobCoordinator | BatchCoordinator>()
  private readonly idleTimeoutMs: number
  private readonly dialTimeoutMs: number
  /** A worker's side carries grants (a haloed tile's pixels and contexts) and a batch's files. */
  private readonly maxClientBodyBytes: number

  constructor (components: TileServiceComponents, options: { leaseMs: number, dialTimeoutMs?: number, maxUploadBytes: number }) {
    this.c = components
    this.maxClientBodyBytes = Math.max(2 * MAX_TILE_BODY_BYTES, options.maxUploadBytes)
    this.idleTimeoutMs = Math.max(MIN_TILE_SESSION_IDLE_MS, 3 * options.leaseMs)
    this.dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    for (const job of this.jobs.values()) job.peerGone(id)
  }

  async start (): Promise<void> {
    await this.c.node.handle(TILE_PROTOCOL, ({ stream, connection }) => {
      this.serve(this.c.openChannel(stream, { maxBodyBytes: MAX_TILE_BODY_BYTES }, 'tile-server'), connection.remotePeer.toString(), { compress: !isLoopback(connection.remoteAddr) })
    }, { maxInboundStreams: MAX_INBOUND_TILE_STREAMS })
    this.c.node.addEventListener('peer:disconnect', this.onDisconnect)
  }

  async stop (): Promise<void> {
    this.c.node.removeEventListener('peer:disconnect', this.onDisconnect)
    await this.c.node.unhandle(TILE_PROTOCOL).catch(() => {})
  }

  /** A job coordinated here: workers may join it from now on. */
  register (job: JobCoordinator | BatchCoordinator): void {
    this.jobs.set(job.jobId, job)
  }

  unregister (jobId: string): void {
    this.jobs.delete(jobId)
  }

  /** `compress`: the worker's link leaves this machine, where zstd saves more time on the wire than it costs (on loopback it does not). */
  private serve (channel: Channel, worker: string, link: { compress: boolean }): void {
    void serveTileSession(channel, worker, id => this.jobs.get(id), { idleTimeoutMs: this.idleTimeoutMs, compressPixels: link.compress, log: this.c.log })
  }

  /** A session with a job's coordinator, for this peer's worker; `compress`: its results are worth compressing (off this machine). */
  async connect (ref: JobRef): Promise<{ channel: Channel, compress: boolean }> {
    if (ref.coordinator === this.c.peerId) {
      const [mine, theirs] = memoryChannelPair()
      this.serve(theirs, this.c.peerId, { compress: false })
      return { channel: mine, compress: false }
    }
    const id = peerIdFromString(ref.coordinator)
    if (ref.addrs.length > 0) await this.c.node.peerStore.merge(id, { multiaddrs: ref.addrs.map(a => multiaddr(a)) })
    const stream: Stream = await openStream(this.c.node, id, TILE_PROTOCOL, { signal: AbortSignal.timeout(this.dialTimeoutMs) })
    const loopback = this.c.node.getConnections(id).some(c => isLoopback(c.remoteAddr))
    return { channel: this.c.openChannel(stream, { maxBodyBytes: this.maxClientBodyBytes }, 'tile-client'), compress: !loopback }
  }
}
