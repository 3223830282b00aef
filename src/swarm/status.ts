import { timingSafeEqual } from 'node:crypto'
import type { PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from 'libp2p'
import type { Clock } from '../common/clock.ts'
import { DEFAULT_DIAL_TIMEOUT_MS, MAX_INBOUND_STATUS_STREAMS, STATUS_REQUEST_WAIT_MS, VERSION_ASK_MS } from '../common/defaults.ts'
import { versionRefusal } from '../net/agent.ts'
import { CancelRefusedError, NetworkError, ProtocolError, TileswarmError, UnknownJobError, oneLine } from '../common/errors.ts'
import { explainDialFailure } from '../net/probe.ts'
import { shortId, type Log } from '../common/log.ts'
import { openStream } from '../net/dial.ts'
import { parsePeerAddress } from '../net/address.ts'
import { MAX_HEADER_BYTES, PROTOCOL_VERSION, STATUS_PROTOCOL } from '../protocol/constants.ts'
import { FramedChannel } from '../protocol/framing.ts'
import { SwarmStatus, type JobView, type JobsTopicMessage } from '../protocol/messages.ts'
import { errorReply, parseOrRefuse, statusClientWire, statusServerWire } from '../protocol/wire.ts'
import type { OpenChannel } from './channels.ts'
import type { Startable } from '../common/startable.ts'

/** A job another peer announced, not heard of again for this long (nor said finished), is dropped from the view. */
const JOB_FORGET_MS = 5 * 60_000
/** The status of a swarm of a thousand peers, with their addresses, is well under this. */
const MAX_STATUS_BYTES = 4 * 1024 * 1024
const MAX_JOBS_SEEN = 1000
/** An announced job silent this long is likely over (its 'finished' lost); one not re-announced for this many announcements has nothing waiting. */
const JOB_SILENT_MS = 60_000
const ANNOUNCEMENTS_MISSED = 3

/**
 * Jobs other peers coordinate, as their announcements on the jobs topic tell
 * of them: progress of the current phase, dropped when said finished.
 */
export class SwarmJobs {
  private readonly clock: Clock
  private readonly jobs = new Map<string, { msg: Extract<JobsTopicMessage, { type: 'announce' }>, firstAt: number, at: number }>()

  constructor (clock: Clock) {
    this.clock = clock
  }

  heard (msg: JobsTopicMessage): void {
    if (msg.type === 'finished') {
      this.jobs.delete(msg.jobId)
      return
    }
    const now = this.clock.now()
    const firstAt = this.jobs.get(msg.jobId)?.firstAt ?? now
    this.jobs.delete(msg.jobId)
    this.jobs.set(msg.jobId, { msg, firstAt, at: now })
    if (this.jobs.size > MAX_JOBS_SEEN) this.jobs.delete(this.jobs.keys().next().value!)
  }

  /**
   * Each announced job's units done, in all (its current phase's) and
   * waiting for a peer. A coordinator announces only while units wait, so a
   * job not heard of for a few announcements has none waiting.
   */
  backlog (announceMs: number): Array<{ jobId: string, done: number, total: number, pending: number }> {
    const now = this.clock.now()
    return [...this.jobs.entries()].filter(([, { at }]) => now - at <= JOB_SILENT_MS).map(([jobId, { msg, at }]) => ({ jobId, done: msg.done, total: msg.tiles, pending: now - at <= ANNOUNCEMENTS_MISSED * announceMs ? msg.pending : 0 }))
  }

  view (): JobView[] {
    const now = this.clock.now()
    const out: JobView[] = []
    for (const [jobId, { msg, firstAt, at }] of this.jobs) {
      if (now - at > JOB_FORGET_MS) {
        this.jobs.delete(jobId)
        continue
      }
      out.push({ jobId, kind: msg.kind, coordinator: msg.coordinator, here: false, phase: msg.kind === 'batch' ? 'images' : 'tiles', done: msg.done, total: msg.tiles, ageS: Math.round((now - firstAt) / 1000), lastHeardS: Math.round((now - at) / 1000), coordinatorAddrs: msg.addrs, ...(msg.submitter !== undefined ? { submitter: msg.submitter } : {}), ...(msg.priority !== undefined ? { priority: msg.priority } : {}) })
    }
    return out
  }
}

/** Who asks to cancel a job: the peer on the other end, and whether it gave the operator's token. */
export interface CancelBy { peer: string, operator: boolean }

export interface StatusServiceComponents {
  node: Libp2p
  openChannel: OpenChannel
  log: Log
  snapshot: (detail: boolean) => Promise<SwarmStatus>
  /** Ends a job coordinated here, or throws why not (unknown, not allowed). */
  cancel: (jobId: string, by: CancelBy) => void
  /** The operator's token (the web page's): whoever gives it may cancel any job coordinated here. None: only submitters may. */
  operatorToken?: string
}

/** The status protocol's peer end: whoever may connect (the swarm key decides) may ask; cancels are for submitters and the operator. */
export class StatusService implements Startable {
  private readonly node: Libp2p
  private readonly openChannel: OpenChannel
  private readonly snapshot: (detail: boolean) => Promise<SwarmStatus>
  private readonly cancel: (jobId: string, by: CancelBy) => void
  private readonly operatorToken: string | undefined
  private readonly log: Log

  constructor (components: StatusServiceComponents) {
    this.node = components.node
    this.openChannel = components.openChannel
    this.snapshot = components.snapshot
    this.cancel = components.cancel
    this.operatorToken = components.operatorToken
    this.log = components.log
  }

  async start (): Promise<void> {
    await this.node.handle(STATUS_PROTOCOL, ({ stream, connection }) => { void this.serve(stream, connection.remotePeer.toString()) }, { maxInboundStreams: MAX_INBOUND_STATUS_STREAMS })
  }

  async stop (): Promise<void> {
    await this.node.unhandle(STATUS_PROTOCOL).catch(() => {})
  }

  private async serve (stream: Stream, peer: string): Promise<void> {
    const wire = statusServerWire(this.openChannel(stream, { maxBodyBytes: 0 }, 'status-server'), peer)
    try {
      const { message } = await wire.receive({ timeoutMs: STATUS_REQUEST_WAIT_MS })
      if (message.type === 'cancel') {
        this.cancel(message.jobId, { peer, operator: sameSecret(message.token, this.operatorToken) })
        await wire.send({ type: 'cancelled', jobId: message.jobId })
      } else {
        await wire.send({ type: 'status' }, Buffer.from(JSON.stringify(await this.snapshot(message.detail === true))))
      }
      await wire.channel.close()
    } catch (err) {
      if (!(err instanceof TileswarmError)) this.log(`status for ${shortId(peer)} failed: ${oneLine((err as Error).message)}`, 'debug')
      await wire.send(errorReply(err)).catch(() => {})
      await wire.channel.close().catch(() => {})
    }
  }
}

function sameSecret (given: string | undefined, token: string | undefined): boolean {
  if (given === undefined || token === undefined) return false
  const a = Buffer.from(given)
  const b = Buffer.from(token)
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * Asks the peer at `address` (its coordinator) to cancel a job: as this
 * node's identity (the submitter's, if it submitted the job), or as the
 * operator with `token`. Throws the peer's refusal as it came.
 */
export async function requestCancel (node: Libp2p, address: string, jobId: string, options: { token?: string, dialTimeoutMs?: number, swarmKey?: Uint8Array } = {}): Promise<void> {
  const target = parsePeerAddress(address, '--peer')
  const timeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  const wire = await statusWire(node, target, `the peer at ${address}`, timeoutMs, async err => {
    throw new NetworkError(`cannot reach ${address}: ${await explainDialFailure(target, err, { swarmKey: options.swarmKey, dialTimeoutMs: timeoutMs })}`)
  })
  try {
    await wire.send({ type: 'cancel', v: PROTOCOL_VERSION, jobId, ...(options.token !== undefined ? { token: options.token } : {}) })
    const { message } = await wire.receive({ timeoutMs })
    if (message.type === 'error') throw remoteError(message)
    if (message.type !== 'cancelled') throw new ProtocolError(`the peer at ${address} answered a cancel with '${message.type}'`)
    await wire.channel.close().catch(() => {})
  } catch (err) {
    wire.channel.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

/** A refusal as the peer named it, so a caller can branch on its class. */
function remoteError (message: { name: string, message: string }): TileswarmError {
  if (message.name === CancelRefusedError.name) return new CancelRefusedError(message.message)
  if (message.name === UnknownJobError.name) return new UnknownJobError(message.message)
  return new ProtocolError(message.message)
}

/** Asks the peer at `address` how it sees the swarm; `detail`: with its coordinators' figures for jobs elsewhere. */
export async function fetchStatus (node: Libp2p, address: string, options: { dialTimeoutMs?: number, swarmKey?: Uint8Array, detail?: boolean } = {}): Promise<SwarmStatus> {
  const target = parsePeerAddress(address, '--peer')
  const timeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  return await askStatus(node, target, `the peer at ${address}`, timeoutMs, options.detail === true, async err => {
    throw new NetworkError(`cannot reach ${address}: ${await explainDialFailure(target, err, { swarmKey: options.swarmKey, dialTimeoutMs: timeoutMs })}`)
  })
}

/** One status request on a stream of its own. */
async function askStatus (node: Libp2p, target: Multiaddr | PeerId, who: string, timeoutMs: number, detail: boolean, unreachable: (err: Error) => Promise<never>): Promise<SwarmStatus> {
  const wire = await statusWire(node, target, who, timeoutMs, unreachable)
  try {
    await wire.send({ type: 'status', v: PROTOCOL_VERSION, ...(detail ? { detail } : {}) })
    const { message, body } = await wire.receive({ timeoutMs })
    if (message.type === 'error') throw new ProtocolError(message.message)
    if (message.type !== 'status') throw new ProtocolError(`${who} answered a status request with '${message.type}'`)
    let parsed: unknown
    try {
      parsed = JSON.parse((body ?? Buffer.alloc(0)).toString('utf8'))
    } catch {
      throw new ProtocolError(`${who} sent a status that is not JSON`)
    }
    await wire.channel.close().catch(() => {})
    return parseOrRefuse(SwarmStatus, parsed, who)
  } catch (err) {
    wire.channel.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

/** A stream of the status protocol to `target`. */
async function statusWire (node: Libp2p, target: Multiaddr | PeerId, who: string, timeoutMs: number, unreachable: (err: Error) => Promise<never>): Promise<ReturnType<typeof statusClientWire>> {
  const stream = await openStream(node, target, STATUS_PROTOCOL, { signal: AbortSignal.timeout(timeoutMs) }).catch(async (err: Error) => {
    // Answered, but not on this protocol: a peer of another version.
    if (err.name === 'UnsupportedProtocolError') {
      const id = 'getPeerId' in target ? target.getPeerId() : target.toString()
      const skew = id !== null ? await versionRefusal(node, peerIdFromString(id), VERSION_ASK_MS) : undefined
      throw new NetworkError(`${who} does not speak ${STATUS_PROTOCOL}${skew !== undefined ? `: ${skew}` : ' (another version of tileswarm?)'}`)
    }
    return await unreachable(err)
  })
  return statusClientWire(new FramedChannel(stream, { maxBodyBytes: MAX_STATUS_BYTES }), who)
}

/** Coordinators asked for the figures of their jobs, at most, per view; a coordinator's answer serves for this long. */
const DETAIL_COORDINATORS = 8
const DETAIL_FRESH_MS = 1000
const DETAIL_TIMEOUT_MS = 2000

/**
 * Jobs elsewhere in full: each coordinator is asked (over the status
 * protocol, on the connection the peer has) for its own figures of its jobs:
 * tiles by peer, leases expired, the phase. One that does not answer leaves
 * its jobs as their announcements told of them.
 */
export class JobDetail {
  private readonly node: Libp2p
  private readonly clock: Clock
  private readonly log: Log
  private readonly asked = new Map<string, { at: number, jobs: Promise<JobView[]> }>()

  constructor (components: { node: Libp2p, clock: Clock, log: Log }) {
    this.node = components.node
    this.clock = components.clock
    this.log = components.log
  }

  async fill (status: SwarmStatus): Promise<SwarmStatus> {
    const now = this.clock.now()
    const coordinators = [...new Set(status.jobs.filter(j => !j.here).map(j => j.coordinator))].slice(0, DETAIL_COORDINATORS)
    for (const [id, a] of this.asked) if (now - a.at > DETAIL_FRESH_MS) this.asked.delete(id)
    const theirs = new Map<string, JobView>()
    await Promise.all(coordinators.map(async id => {
      let a = this.asked.get(id)
      if (a === undefined) {
        a = { at: now, jobs: askStatus(this.node, peerIdFromString(id), `coordinator ${shortId(id)}`, DETAIL_TIMEOUT_MS, false, async err => { throw err }).then(s => s.jobs.filter(j => j.here), (err: Error) => {
          this.log(`no job figures from ${shortId(id)}: ${oneLine(err.message)}`, 'debug')
          return []
        }) }
        this.asked.set(id, a)
      }
      for (const j of await a.jobs) theirs.set(j.jobId, j)
    }))
    return {
      ...status,
      jobs: status.jobs.map(j => {
        const full = j.here ? undefined : theirs.get(j.jobId)
        return full === undefined ? j : { ...full, here: false, lastHeardS: 0, ...(j.coordinatorAddrs !== undefined ? { coordinatorAddrs: j.coordinatorAddrs } : {}) }
      }),
    }
  }
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`
export const ago = (s: number): string => s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`

/** The status as a person reads it: the peer, its peers, the jobs. */
export function formatStatus (s: SwarmStatus): string {
  const lines: string[] = []
  const connected = s.peers.filter(p => p.connected).length
  lines.push(`peer ${s.peerId} (tileswarm ${s.version}${s.protocol !== undefined ? `, protocol ${s.protocol}` : ''}): up ${ago(s.upS)}, ${plural(s.slots, 'slot')}, ${s.done} tiles and images done, ${plural(s.heldLeases, 'lease')} held, ${plural(s.activeJobs, 'job')} coordinated now`)
  lines.push(`  ${s.addrs.join('\n  ')}`)
  lines.push('')
  lines.push(`peers: ${connected} connected${s.peers.length > connected ? `, ${s.peers.length - connected} heard from lately` : ''}${connected === 0 ? ' (alone: jobs submitted here run on this peer only)' : ''}`)
  if (s.peers.length > 0) {
    const rows = s.peers.map(p => [shortId(p.peerId), p.connected ? 'connected' : `seen ${ago(p.lastSeenS)} ago`, p.slots?.toString() ?? '?', p.upS !== undefined ? ago(p.upS) : '?', p.done?.toString() ?? '?', p.addrs[0] ?? ''])
    lines.push(...table(['PEER', 'STATE', 'SLOTS', 'UP', 'DONE', 'ADDRESS'], rows))
  }
  if (s.otherVersions !== undefined && s.otherVersions.length > 0) {
    lines.push('')
    lines.push(`other versions: ${plural(s.otherVersions.length, 'peer')} met speak another protocol and share no jobs with this one (docs/operating.md: upgrades)`)
    lines.push(...table(['PEER', 'PROTOCOL', 'VERSION'], s.otherVersions.map(o => [o.peerId, String(o.protocol), o.version ?? '?'])))
  }
  lines.push('')
  lines.push(`jobs: ${s.jobs.filter(j => j.here).length} here, ${s.jobs.filter(j => !j.here).length} elsewhere`)
  if (s.jobs.length > 0) {
    const rows = s.jobs.map(j => [
      j.jobId,
      j.kind,
      j.here ? 'here' : shortId(j.coordinator),
      j.phase,
      `${j.done}/${j.total}${j.total > 0 ? ` (${Math.floor(100 * j.done / j.total)}%)` : ''}`,
      ago(j.ageS),
      j.leases !== undefined ? `${j.leases.expired}` : '-',
      j.byPeer !== undefined ? Object.entries(j.byPeer).map(([p, n]) => `${shortId(p)}:${n}`).join(' ') : '-',
    ])
    lines.push(...table(['JOB', 'KIND', 'COORDINATOR', 'PHASE', 'DONE', 'AGE', 'EXPIRED', 'BY PEER'], rows))
  }
  const sc = s.scaling
  if (sc !== undefined) {
    lines.push('')
    const drain = sc.drainS !== undefined ? `~${Math.round(sc.drainS)} s to drain at ${sc.ratePerS}/s` : sc.backlog > 0 ? 'rate not known yet' : 'nothing to drain'
    lines.push(`scaling: backlog ${plural(sc.backlog, 'unit')}, ${drain} on ${plural(sc.slots, 'slot')} (bound ${sc.boundS} s); ${sc.acting ? 'this peer decides for the swarm' : sc.out ? 'another peer with a scale-out hook (a lower id) decides' : 'scale-in only'}; ${sc.scaledPeers.length} started here and up`)
    if (sc.decisions.length > 0) lines.push(...table(['WHEN', 'DIR', 'PEERS', 'OUTCOME', 'WHY'], sc.decisions.map(d => [`${ago(d.ageS)} ago`, d.direction, d.peers?.map(shortId).join(' ') ?? String(d.count), `${d.outcome}${d.message !== undefined ? `: ${d.message}` : ''}`, d.reason])))
  }
  return lines.join('\n')
}

export function table (head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(r => r[i]!.length)))
  const line = (cells: string[]): string => '  ' + cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i]!)).join('  ')
  return [line(head), ...rows.map(line)]
}
