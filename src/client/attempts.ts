import type { PrivateKey } from '@libp2p/interface'
import { DEFAULT_DIAL_TIMEOUT_MS, SUBMIT_MAX_BODY_BYTES } from '../common/defaults.ts'
import { JobFailedError, NetworkError, ProtocolError, TryEndedError, oneLine } from '../common/errors.ts'
import { createClientNode } from '../net/node.ts'
import { FramedChannel } from '../protocol/framing.ts'
import { submitClientWire } from '../protocol/wire.ts'
import { PeerRoster, type Candidate, type ClientNode, type RosterEvent } from './roster.ts'

/** Where the client finds the swarm and how it dials: what a single image and a batch share. */
export interface SwarmConnectOptions {
  /** Entry points: any peers of the swarm, tried in order; the swarm tells of more. */
  peer: string | string[]
  dialTimeoutMs?: number
  /** Rounds of waiting for a busy swarm (every peer full) before giving up. */
  busyRounds?: number
  /** The private swarm's pre-shared key. */
  swarmKey?: Uint8Array
  /** A kept identity, so peers with --allow-submit can know this client. */
  privateKey?: PrivateKey
  /** A client node already up (a batch's large images go on its connections); made and stopped here otherwise. */
  node?: ClientNode
}

export type SubmitClientWire = ReturnType<typeof submitClientWire>

/** One try on one peer: its wire, and whether the peer has taken the work on (lost after that, the work resumes elsewhere). */
export interface Attempt {
  candidate: Candidate
  wire: SubmitClientWire
  admitted: boolean
}

/**
 * A client's work tried on the swarm's peers, one at a time: the next peer
 * after one that is full, leaving or unreachable, or one lost mid-job, until
 * a try gives the result or the roster has no peer left.
 */
export class PeerTries {
  readonly roster: PeerRoster
  private readonly options: SwarmConnectOptions
  private readonly dialTimeoutMs: number
  private client: ClientNode | undefined

  constructor (options: SwarmConnectOptions) {
    this.options = options
    this.roster = new PeerRoster(Array.isArray(options.peer) ? options.peer : [options.peer], options.busyRounds)
    this.dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  }

  /** The client's node: the caller's, or one made here (and stopped by `stop`). */
  async start (): Promise<ClientNode> {
    this.client = this.options.node ?? await createClientNode({ dialTimeoutMs: this.dialTimeoutMs, swarmKey: this.options.swarmKey, privateKey: this.options.privateKey })
    return this.client
  }

  get node (): ClientNode {
    if (this.client === undefined) throw new Error('PeerTries.start() first')
    return this.client
  }

  /** Entry points the work would go to whoever answers, said before anything is sent (by the caller that gave the node, if it did). */
  noteUnchecked (emit: (event: { event: 'note', message: string }) => void): void {
    if (this.options.node === undefined) for (const label of this.roster.unchecked) emit({ event: 'note', message: uncheckedNote(label) })
  }

  /** `attempt` on one peer after another until one gives its result. */
  async untilDone<T> (attempt: (candidate: Candidate) => Promise<T>, emit: (event: RosterEvent) => void): Promise<T> {
    for (;;) {
      const tried = await this.tryNext(attempt, emit)
      if (tried !== undefined) return tried.value
    }
  }

  /** `attempt` on the next peer: its result, or undefined when the try ended without it (how, kept and told). */
  async tryNext<T> (attempt: (candidate: Candidate) => Promise<T>, emit: (event: RosterEvent) => void): Promise<{ value: T } | undefined> {
    const candidate = await this.roster.next()
    try {
      return { value: await attempt(candidate) }
    } catch (err) {
      if (!(err instanceof TryEndedError)) throw err
      this.roster.ended(candidate, err.ending, emit)
      return undefined
    }
  }

  /**
   * `talk` over a submit stream to `candidate`. A stream that breaks, goes
   * silent or speaks nonsense ends the try (the work resumes elsewhere once
   * admitted); `settle` runs once the stream is done with, however it ended.
   */
  async on<T> (candidate: Candidate, talk: (attempt: Attempt) => Promise<T>, settle?: () => Promise<void>): Promise<T> {
    const stream = await this.roster.open(this.node, candidate, { dialTimeoutMs: this.dialTimeoutMs, swarmKey: this.options.swarmKey })
    const attempt: Attempt = { candidate, wire: submitClientWire(new FramedChannel(stream, { maxBodyBytes: SUBMIT_MAX_BODY_BYTES })), admitted: false }
    try {
      return await talk(attempt)
    } catch (err) {
      attempt.wire.channel.abort(err as Error)
      throw lostOrUnreachable(err, attempt)
    } finally {
      await settle?.()
    }
  }

  /** Stops the node if it was made here. */
  async stop (): Promise<void> {
    if (this.options.node === undefined) await this.client?.stop()
  }
}

function uncheckedNote (label: string): string {
  return `--peer ${label} has no /p2p/ peer id: the image goes to whichever peer answers there (add /p2p/<id> to have it checked)`
}

/** The stream broke, went silent or spoke nonsense: the work goes elsewhere (resumed, if the peer had admitted it). Anything else stands. */
function lostOrUnreachable (err: unknown, attempt: Attempt): unknown {
  if (err instanceof TryEndedError || err instanceof JobFailedError) return err
  // WrongPeerError too: a NetworkError by class, not by name.
  if (err instanceof NetworkError || err instanceof ProtocolError) {
    return new TryEndedError(attempt.admitted ? { kind: 'lost', reason: oneLine(err.message) } : { kind: 'unreachable', error: new NetworkError(`cannot submit to ${attempt.candidate.label}: ${oneLine(err.message)}`) })
  }
  return err
}
