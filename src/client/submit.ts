import type { PrivateKey, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { DEFAULT_DIAL_TIMEOUT_MS, DEFAULT_MAX_UPLOAD_BYTES, SUBMIT_IDLE_MS } from '../defaults.ts'
import { JobFailedError, NetworkError, PeerBusyError, ProtocolError, TileswarmError, oneLine } from '../errors.ts'
import { toSpecs } from '../imaging/index.ts'
import { parsePeerAddress } from '../net/address.ts'
import { dialPeer } from '../net/dial.ts'
import { createClientNode } from '../net/node.ts'
import { probe } from '../net/probe.ts'
import { MAX_HOLDERS, PROTOCOL_VERSION, SUBMIT_PROTOCOL } from '../protocol/constants.ts'
import { FramedChannel } from '../protocol/framing.ts'
import type { SubmitResult } from '../protocol/messages.ts'
import { submitClientWire } from '../protocol/wire.ts'
import { OutputFile, readInput } from './files.ts'
import type { JobRequest } from './options.ts'

export type SubmitEvent =
  | { event: 'connected', peer: string, client: string }
  | { event: 'note', message: string }
  | { event: 'uploaded', bytes: number }
  | { event: 'accepted', jobId: string, width: number, height: number, tiles: number, phases: number, tileSize: number, halo: number, notes: string[] }
  | { event: 'progress', done: number, total: number, workers: number }
  /** Every tile is in; the coordinator encodes the result. */
  | { event: 'encoding' }
  | { event: 'receiving', received: number, total: number }
  /** A peer could not take the job (full, leaving, unreachable): the next is tried. */
  | { event: 'passed', peer: string, reason: string }
  /** The coordinator went away mid-job: the job resumes on another peer. */
  | { event: 'lost', coordinator: string, reason: string }
  | { event: 'resumed', coordinator: string, on: string }
  /** The resumed job collected this many finished tiles instead of computing them again. */
  | { event: 'recovered', tiles: number, total: number }
  | { event: 'done', output: string, bytes: number, width: number, height: number, ms: number, tilesByPeer: Record<string, number>, leases: SubmitResult['leases'] }

export type SubmitDone = Extract<SubmitEvent, { event: 'done' }>

export interface SwarmSubmitOptions {
  /** Entry points: any peers of the swarm, tried in order; the swarm tells of more. */
  peer: string | string[]
  tileSize?: number
  dialTimeoutMs?: number
  /** Silence from the coordinator for this long and the job goes elsewhere (it reports at least every 5 s). */
  idleTimeoutMs?: number
  /** Rounds of waiting for a busy swarm (every peer full) before giving up. */
  busyRounds?: number
  maxUploadBytes?: number
  onEvent?: (event: SubmitEvent) => void
  /** The private swarm's pre-shared key. */
  swarmKey?: Uint8Array
  /** A kept identity, so peers with --allow-submit can know this client. */
  privateKey?: PrivateKey
}

/** Why a dial failed, in words a user can act on: a plain look at the address says what is there. */
async function explainDialFailure (address: Multiaddr, err: Error, options: { swarmKey?: Uint8Array, dialTimeoutMs: number }): Promise<string> {
  if (err.name === 'WrongPeerError') return err.message
  const keyHint = options.swarmKey === undefined ? 'the swarm is private: pass its --swarm-key' : 'check that --swarm-key is the swarm\'s key'
  const seen = await probe(address, Math.min(2000, options.dialTimeoutMs))
  switch (seen.kind) {
    case 'unreachable': return `nothing answers there (${seen.code})`
    case 'private-swarm': return `a private swarm's peer answers there, and the handshake failed: ${keyHint}`
    case 'libp2p': return options.swarmKey === undefined
      ? `a libp2p peer answers there, but the connection failed: ${oneLine(err.message)}`
      : 'the peer there runs an open swarm: drop --swarm-key'
    case 'other': return `something other than a tileswarm peer answers there (it said '${seen.said}')`
    case 'silent': return err.name === 'TimeoutError' || /abort/i.test(err.message)
      ? `no answer within ${options.dialTimeoutMs / 1000} s: something accepts connections there but does not speak (${keyHint}, or check the address)`
      : `something accepts connections there but does not speak libp2p (${oneLine(err.message)})`
  }
}

/** How one try on one peer ended, if not with the result. */
type Ending =
  /** Not reached, or gone before it admitted the job. */
  | { kind: 'unreachable', error: NetworkError }
  /** Full for now (--max-jobs): worth asking again later. */
  | { kind: 'busy', reason: string }
  /** Will not take it: leaving, or this peer's own rules (--allow-submit, its limits), or it failed there. */
  | { kind: 'refused', reason: string }
  /** Gone after admitting it: the job resumes elsewhere. */
  | { kind: 'lost', reason: string }

class Ended extends Error {
  readonly ending: Ending
  constructor (ending: Ending) {
    super(ending.kind)
    this.ending = ending
  }
}

/**
 * Refusals that mean "not here, try another peer", not "this job cannot be
 * done": a peer's own rules and limits, and its own failures. A broken image
 * or a bad pipeline fails the job at once.
 */
const PASS_ON = new Set(['PeerBusyError', 'PeerLeavingError', 'SubmitRefusedError', 'LimitExceededError', 'InternalError'])

function passOn (name: string, reason: string, accepted: boolean): Ended {
  if (accepted) return new Ended({ kind: 'lost', reason })
  return new Ended(name === 'PeerBusyError' ? { kind: 'busy', reason } : { kind: 'refused', reason })
}

interface Candidate {
  /** What the user gave, or the first address a coordinator told of. */
  label: string
  addrs: Multiaddr[]
  peerId?: string
}

const isLoopback = (addr: Multiaddr): boolean => /^\/(ip4\/127\.|ip6\/::1\/)/.test(addr.toString())

/**
 * Sends a job to a peer, follows its progress, writes the result. The
 * client owns the job until it has the result: if a peer is full or leaving
 * it tries the next; if the coordinator is lost mid-job, it resumes the job
 * on another peer, which first collects the tiles already finished from the
 * peers that hold them. It gives up only when no peer is left.
 */
export async function submitToSwarm (request: JobRequest, options: SwarmSubmitOptions): Promise<SubmitDone> {
  const started = performance.now()
  const emit = options.onEvent ?? (() => {})
  const entries = (Array.isArray(options.peer) ? options.peer : [options.peer]).map(text => ({ label: text, addrs: [parsePeerAddress(text, '--peer')] }))
  if (entries.length === 0) throw new NetworkError('no peer to submit to: give --peer')
  const output = await OutputFile.create(request.output)
  const dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  const node = await createClientNode({ dialTimeoutMs, swarmKey: options.swarmKey, privateKey: options.privateKey })
  // Entry points on loopback: a local swarm, where peers' loopback addresses are the ones to use.
  const local = entries.every(e => isLoopback(e.addrs[0]!))
  try {
    const bytes = await readInput(request.input, options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES)
    for (const e of entries) if (e.addrs[0]!.getPeerId() === null) emit({ event: 'note', message: `--peer ${e.label} has no /p2p/ peer id: the image goes to whichever peer answers there (add /p2p/<id> to have it checked)` })
    const learned = new Map<string, Candidate>()
    /** Peer ids (or labels) tried, and how it went. */
    const tried = new Map<string, { kind: Ending['kind'], reason: string }>()
    /** Who holds finished tiles of this job, from every coordinator it has had: what a resumed job collects. */
    const holders = new Map<string, { peerId: string, addrs: string[] }>()
    /** The coordinator lost last, as the user knows it; the job resumes from it. */
    let resumeFrom: string | undefined
    let resumeFromId: string | undefined
    let tileSize = options.tileSize
    let firstUnreachable: NetworkError | undefined
    let lastLoss: string | undefined
    let busyRound = 0
    const keyOf = (c: Candidate): string => c.peerId ?? c.addrs[0]?.getPeerId() ?? c.label
    const next = (): Candidate | undefined => {
      const others = [...learned.values()].sort((a, b) => Number(holders.has(b.peerId!)) - Number(holders.has(a.peerId!)))
      return [...entries, ...others].find(c => !tried.has(keyOf(c)))
    }

    /** One try on one peer: the result, or an Ended saying how it ended. */
    const attempt = async (candidate: Candidate): Promise<SubmitDone> => {
      let stream: Stream | undefined
      let dialError: Error | undefined
      for (const addr of candidate.addrs) {
        try {
          const signal = AbortSignal.timeout(dialTimeoutMs)
          const connection = await dialPeer(node, addr, { signal })
          stream = await connection.newStream(SUBMIT_PROTOCOL, { signal })
          // Known by the id that answered: the same peer, told of again by a later coordinator, is not tried twice.
          candidate.peerId ??= connection.remotePeer.toString()
          break
        } catch (err) {
          dialError ??= err as Error
        }
      }
      if (stream === undefined) {
        throw new Ended({ kind: 'unreachable', error: new NetworkError(`cannot reach ${candidate.label}: ${await explainDialFailure(candidate.addrs[0]!, dialError!, { swarmKey: options.swarmKey, dialTimeoutMs })}`) })
      }
      const wire = submitClientWire(new FramedChannel(stream, { maxBodyBytes: 4 * 1024 * 1024 * 1024 }))
      let admitted = false
      let accepted = false
      let lastReceiving = 0
      const receive = async (): ReturnType<typeof wire.receive> => await wire.receive({
        timeoutMs: options.idleTimeoutMs ?? SUBMIT_IDLE_MS,
        onBody: (received, total) => {
          if (received === total || performance.now() - lastReceiving > 200) {
            lastReceiving = performance.now()
            emit({ event: 'receiving', received, total })
          }
        },
      })
      try {
        if (resumeFrom !== undefined) emit({ event: 'resumed', coordinator: resumeFrom, on: candidate.label })
        else emit({ event: 'connected', peer: candidate.label, client: node.peerId.toString() })
        await wire.send({
          type: 'submit',
          v: PROTOCOL_VERSION,
          ops: toSpecs(request.steps),
          format: request.format,
          quality: request.quality,
          bytes: bytes.length,
          ...(tileSize !== undefined ? { tileSize } : {}),
          ...(resumeFrom !== undefined ? { resume: { ...(resumeFromId !== undefined ? { from: resumeFromId } : {}), holders: [...holders.values()].slice(0, MAX_HOLDERS) } } : {}),
        })
        // The peer admits the job, or refuses it, before the image is sent.
        const admission = (await receive()).message
        if (admission.type === 'error') {
          if (PASS_ON.has(admission.name)) throw passOn(admission.name, admission.message, false)
          throw new JobFailedError(admission.message)
        }
        if (admission.type !== 'ready') throw new ProtocolError(`expected the peer to admit the job, got ${admission.type}`)
        admitted = true
        await wire.send({ type: 'upload' }, bytes)
        emit({ event: 'uploaded', bytes: bytes.length })
        for (;;) {
          const { message: msg, body } = await receive()
          switch (msg.type) {
            case 'accepted':
              accepted = true
              // A resumed job must cut the same tiles, or nothing finished fits.
              tileSize = msg.tileSize
              emit({ event: 'accepted', jobId: msg.jobId, width: msg.width, height: msg.height, tiles: msg.tiles, phases: msg.phases, tileSize: msg.tileSize, halo: msg.halo, notes: msg.notes })
              break
            case 'progress':
              if (msg.phase === 'tiles') emit({ event: 'progress', done: msg.done, total: msg.total, workers: msg.workers })
              else if (msg.phase === 'encoding') emit({ event: 'encoding' })
              break
            case 'peers':
              for (const h of msg.holders) holders.set(h.peerId, h)
              for (const p of msg.peers) {
                const addrs = p.addrs.map(a => parsePeerAddress(a, 'a peer the coordinator told of')).filter(a => isLoopback(a) === local)
                if (addrs.length > 0) learned.set(p.peerId, { label: addrs[0]!.toString(), addrs, peerId: p.peerId })
              }
              break
            case 'recovered':
              emit({ event: 'recovered', tiles: msg.tiles, total: msg.total })
              break
            case 'ready':
              throw new ProtocolError('the coordinator admitted the job twice')
            case 'error':
              if (PASS_ON.has(msg.name)) throw passOn(msg.name, msg.message, accepted)
              throw new JobFailedError(msg.message)
            case 'result': {
              if (body === undefined || body.length === 0) throw new ProtocolError('the coordinator sent an empty result')
              await output.commit(body)
              await wire.channel.close().catch(() => {})
              const done = { event: 'done' as const, output: request.output, bytes: body.length, width: msg.width, height: msg.height, ms: performance.now() - started, tilesByPeer: msg.tilesByPeer, leases: msg.leases }
              emit(done)
              return done
            }
          }
        }
      } catch (err) {
        wire.channel.abort(err as Error)
        if (err instanceof Ended || err instanceof JobFailedError) throw err
        // The stream broke, went silent or spoke nonsense: the job goes elsewhere (resumed, if the peer had admitted it).
        if (err instanceof TileswarmError && (err.name === 'NetworkError' || err.name === 'ProtocolError')) {
          throw new Ended(admitted ? { kind: 'lost', reason: oneLine(err.message) } : { kind: 'unreachable', error: new NetworkError(`cannot submit to ${candidate.label}: ${oneLine(err.message)}`) })
        }
        throw err
      }
    }

    for (;;) {
      const candidate = next()
      if (candidate === undefined) {
        // Every peer full: wait a little and ask the busy ones again, a few times.
        const busy = [...tried].filter(([, how]) => how.kind === 'busy')
        if (busy.length > 0 && busyRound < (options.busyRounds ?? 3)) {
          busyRound++
          for (const [key] of busy) tried.delete(key)
          await new Promise(resolve => setTimeout(resolve, 1000 * busyRound))
          continue
        }
        if (lastLoss !== undefined) throw new NetworkError(`${lastLoss}, and no other peer could take the job over: the job is lost; submit it again`)
        const kinds = new Set([...tried.values()].map(how => how.kind))
        if (kinds.size === 1 && kinds.has('unreachable')) throw firstUnreachable!
        // Every peer said no the same way: say it as they did.
        const reasons = new Set([...tried.values()].map(how => how.reason))
        if (kinds.size === 1 && kinds.has('refused') && reasons.size === 1) throw new JobFailedError([...reasons][0]!)
        throw new PeerBusyError(`no peer could take the job: ${[...tried].map(([peer, how]) => `${peer}: ${how.reason}`).join('; ')}`)
      }
      try {
        return await attempt(candidate)
      } catch (err) {
        if (!(err instanceof Ended)) throw err
        const { ending } = err
        tried.set(keyOf(candidate), { kind: ending.kind, reason: ending.kind === 'unreachable' ? oneLine(ending.error.message) : ending.reason })
        if (ending.kind === 'unreachable') {
          firstUnreachable ??= ending.error
          emit({ event: 'passed', peer: candidate.label, reason: oneLine(ending.error.message) })
        } else if (ending.kind === 'busy' || ending.kind === 'refused') {
          emit({ event: 'passed', peer: candidate.label, reason: ending.reason })
        } else {
          lastLoss = `lost the coordinator at ${candidate.label} (${ending.reason})`
          emit({ event: 'lost', coordinator: candidate.label, reason: ending.reason })
          resumeFrom = candidate.label
          resumeFromId = candidate.peerId ?? candidate.addrs[0]?.getPeerId() ?? undefined
        }
      }
    }
  } finally {
    await output.discard()
    await node.stop()
  }
}
