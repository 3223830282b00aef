import type { Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { BUSY_ROUND_STEP_MS, DEFAULT_BUSY_ROUNDS, VERSION_ASK_MS } from '../common/defaults.ts'
import { JobCancelledError, JobFailedError, NetworkError, PeerBusyError, TryEndedError, oneLine, type TryEnding } from '../common/errors.ts'
import { isLoopback, parsePeerAddress } from '../net/address.ts'
import { versionRefusal } from '../net/agent.ts'
import { dialPeer } from '../net/dial.ts'
import type { createClientNode } from '../net/node.ts'
import { explainDialFailure } from '../net/probe.ts'
import { MAX_HOLDERS, SUBMIT_PROTOCOL } from '../protocol/constants.ts'
import type { SubmitServerMessage } from '../protocol/messages.ts'

export type ClientNode = Awaited<ReturnType<typeof createClientNode>>

/**
 * Refusals that mean "not here, try another peer", not "this job cannot be
 * done": a peer's own rules and limits, and its own failures. A broken image
 * or a bad pipeline fails the job at once.
 */
const PASS_ON = new Set(['PeerBusyError', 'PeerLeavingError', 'SubmitRefusedError', 'LimitExceededError', 'InternalError'])

/** A peer's error reply: a TryEndedError (try another peer; lost, if it had `accepted` the work) or the job's own failure. */
export function refusal (reply: { name: string, message: string }, options: { accepted: boolean }): TryEndedError | JobFailedError {
  const reason = reply.message
  // Cancelled by its submitter or the operator: over, not to be tried elsewhere.
  if (reply.name === JobCancelledError.name) return new JobCancelledError(reason)
  if (!PASS_ON.has(reply.name)) return new JobFailedError(reason)
  if (options.accepted) return new TryEndedError({ kind: 'lost', reason })
  return new TryEndedError(reply.name === 'PeerBusyError' ? { kind: 'busy', reason } : { kind: 'refused', reason })
}

export interface Candidate {
  /** What the user gave, or the first address a coordinator told of. */
  label: string
  addrs: Multiaddr[]
  peerId?: string
}

/** What the roster tells of how the tries go. */
export type RosterEvent =
  | { event: 'passed', peer: string, reason: string }
  | { event: 'lost', coordinator: string, reason: string }

/**
 * The peers a client may submit to: the entry points the user gave, then
 * those coordinators told of (holders of finished work first). It says which
 * to try next, keeps how each try ended, waits a little for a swarm that is
 * only busy, and when none is left says why in one error.
 */
export class PeerRoster {
  private readonly entries: Candidate[]
  private readonly learned = new Map<string, Candidate>()
  private readonly tried = new Map<string, { kind: TryEnding['kind'], reason: string }>()
  /** Who holds finished work of this job, from every coordinator it has had: what a resumed job collects. */
  readonly holders = new Map<string, { peerId: string, addrs: string[] }>()
  /** The coordinator lost last, as the user knows it, and its peer id: the job resumes from it. */
  resumeFrom: string | undefined
  resumeFromId: string | undefined
  private firstUnreachable: NetworkError | undefined
  private lastLoss: string | undefined
  private busyRound = 0
  private readonly busyRounds: number
  /** Entry points on loopback: a local swarm, where peers' loopback addresses are the ones to use. */
  private readonly local: boolean

  constructor (peers: string[], busyRounds = DEFAULT_BUSY_ROUNDS) {
    this.entries = peers.map(text => ({ label: text, addrs: [parsePeerAddress(text, '--peer')] }))
    if (this.entries.length === 0) throw new NetworkError('no peer to submit to: give --peer')
    this.local = this.entries.every(e => isLoopback(e.addrs[0]!))
    this.busyRounds = busyRounds
  }

  /** Entry points the image would go to whoever answers: said once, before anything is sent. */
  get unchecked (): string[] {
    return this.entries.filter(e => e.addrs[0]!.getPeerId() === null).map(e => e.label)
  }

  private keyOf (c: Candidate): string {
    return c.peerId ?? c.addrs[0]?.getPeerId() ?? c.label
  }

  /** A coordinator told of the swarm: where to resume, and who holds finished work. */
  heard (msg: Extract<SubmitServerMessage, { type: 'peers' }>): void {
    for (const h of msg.holders) this.holders.set(h.peerId, h)
    for (const p of msg.peers) {
      const addrs = p.addrs.map(a => parsePeerAddress(a, 'a peer the coordinator told of')).filter(a => isLoopback(a) === this.local)
      if (addrs.length > 0) this.learned.set(p.peerId, { label: addrs[0]!.toString(), addrs, peerId: p.peerId })
    }
  }

  /** Every peer known: the entry points, then those coordinators told of. */
  get addresses (): string[] {
    return [...this.entries.map(e => e.label), ...[...this.learned.values()].map(c => `${c.addrs[0]!.toString()}${c.addrs[0]!.getPeerId() === null && c.peerId !== undefined ? `/p2p/${c.peerId}` : ''}`)]
  }

  /** What a resumed submission says: whom it resumes from, and who holds finished work. */
  get resume (): { from?: string, holders: Array<{ peerId: string, addrs: string[] }> } | undefined {
    if (this.resumeFrom === undefined) return undefined
    return { ...(this.resumeFromId !== undefined ? { from: this.resumeFromId } : {}), holders: [...this.holders.values()].slice(0, MAX_HOLDERS) }
  }

  /** The next peer to try; after every peer was busy, the busy ones again a few times; else the reason none could take it. */
  async next (): Promise<Candidate> {
    for (;;) {
      const others = [...this.learned.values()].sort((a, b) => Number(this.holders.has(b.peerId!)) - Number(this.holders.has(a.peerId!)))
      const candidate = [...this.entries, ...others].find(c => !this.tried.has(this.keyOf(c)))
      if (candidate !== undefined) return candidate
      const busy = [...this.tried].filter(([, how]) => how.kind === 'busy')
      if (busy.length > 0 && this.busyRound < this.busyRounds) {
        this.busyRound++
        for (const [key] of busy) this.tried.delete(key)
        await new Promise(resolve => setTimeout(resolve, BUSY_ROUND_STEP_MS * this.busyRound))
        continue
      }
      if (this.lastLoss !== undefined) throw new NetworkError(`${this.lastLoss}, and no other peer could take the job over: the job is lost; submit it again`)
      const kinds = new Set([...this.tried.values()].map(how => how.kind))
      if (kinds.size === 1 && kinds.has('unreachable')) throw this.firstUnreachable!
      // Every peer said no the same way: say it as they did.
      const reasons = new Set([...this.tried.values()].map(how => how.reason))
      if (kinds.size === 1 && kinds.has('refused') && reasons.size === 1) throw new JobFailedError([...reasons][0]!)
      throw new PeerBusyError(`no peer could take the job: ${[...this.tried].map(([peer, how]) => `${peer}: ${how.reason}`).join('; ')}`)
    }
  }

  /** A try ended without the result: kept, and told. */
  ended (candidate: Candidate, ending: TryEnding, emit: (event: RosterEvent) => void): void {
    this.tried.set(this.keyOf(candidate), { kind: ending.kind, reason: ending.kind === 'unreachable' ? oneLine(ending.error.message) : ending.reason })
    // With no other peer to try, the error that ends the work says it: not said twice.
    const more = [...this.entries, ...this.learned.values()].some(c => !this.tried.has(this.keyOf(c)))
    if (ending.kind === 'unreachable') {
      this.firstUnreachable ??= ending.error
      if (more) emit({ event: 'passed', peer: candidate.label, reason: oneLine(ending.error.message) })
    } else if (ending.kind === 'refused' && !more) {
      // Said by the error.
    } else if (ending.kind === 'busy' || ending.kind === 'refused') {
      emit({ event: 'passed', peer: candidate.label, reason: ending.reason })
    } else {
      this.lastLoss = `lost the coordinator at ${candidate.label} (${ending.reason})`
      emit({ event: 'lost', coordinator: candidate.label, reason: ending.reason })
      this.resumeFrom = candidate.label
      this.resumeFromId = candidate.peerId ?? candidate.addrs[0]?.getPeerId() ?? undefined
    }
  }

  /** A submit stream to the candidate, by the first of its addresses that answers; a TryEndedError (unreachable) if none does. */
  async open (node: ClientNode, candidate: Candidate, options: { dialTimeoutMs: number, swarmKey?: Uint8Array }): Promise<Stream> {
    let dialError: Error | undefined
    for (const addr of candidate.addrs) {
      try {
        const signal = AbortSignal.timeout(options.dialTimeoutMs)
        const connection = await dialPeer(node, addr, { signal })
        const stream = await connection.newStream(SUBMIT_PROTOCOL, { signal }).catch(async (err: Error) => {
          // Answered, but not on our protocol: its identify says which version it runs.
          const skew = err.name === 'UnsupportedProtocolError' ? await versionRefusal(node, connection.remotePeer, VERSION_ASK_MS) : undefined
          if (skew !== undefined) throw new TryEndedError({ kind: 'unreachable', error: new NetworkError(`cannot submit to ${candidate.label}: ${skew}`) })
          throw err
        })
        // Known by the id that answered: the same peer, told of again by a later coordinator, is not tried twice.
        candidate.peerId ??= connection.remotePeer.toString()
        return stream
      } catch (err) {
        if (err instanceof TryEndedError) throw err
        dialError ??= err as Error
      }
    }
    throw new TryEndedError({ kind: 'unreachable', error: new NetworkError(`cannot reach ${candidate.label}: ${await explainDialFailure(candidate.addrs[0]!, dialError!, options)}`) })
  }
}
