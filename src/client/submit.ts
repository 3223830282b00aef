import type { PrivateKey } from '@libp2p/interface'
import { DEFAULT_DIAL_TIMEOUT_MS, DEFAULT_MAX_UPLOAD_BYTES, SUBMIT_IDLE_MS } from '../common/defaults.ts'
import { JobFailedError, LimitExceededError, NetworkError, ProtocolError, TileswarmError, oneLine } from '../common/errors.ts'
import { toSpecs } from '../imaging/index.ts'
import { createClientNode } from '../net/node.ts'
import { PROTOCOL_VERSION } from '../protocol/constants.ts'
import { FramedChannel } from '../protocol/framing.ts'
import type { SubmitResult } from '../protocol/messages.ts'
import { submitClientWire } from '../protocol/wire.ts'
import { OutputFile, readInput } from './files.ts'
import type { JobRequest } from './options.ts'
import { Ended, PeerRoster, refusal, type Candidate } from './roster.ts'
import type { VerifyFigures, VerifyLevel } from '../protocol/verify-level.ts'

export type SubmitEvent =
  | { event: 'connected', peer: string, client: string }
  | { event: 'note', message: string }
  | { event: 'uploaded', bytes: number }
  | { event: 'accepted', jobId: string, width: number, height: number, tiles: number, phases: number, tileSize: number, halo: number, notes: string[] }
  /** `placed`: tiles finished since the last progress, by the peer that computed them (numbered phase * tiles + tile). */
  | { event: 'progress', done: number, total: number, workers: number, placed?: Record<string, number[]>, verify?: VerifyFigures }
  /** A peer's result lost a vote against other peers': the coordinator gives it no more of the job and redoes what it delivered. */
  | { event: 'excluded', peer: string, wrong: number }
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
  | { event: 'done', output: string, bytes: number, width: number, height: number, ms: number, tilesByPeer: Record<string, number>, leases: SubmitResult['leases'], verify?: VerifyFigures }

export type SubmitDone = Extract<SubmitEvent, { event: 'done' }>

/** What one image sent to the swarm gives: the 'done' event, and the encoded result itself. */
export type SubmitOutcome = SubmitDone & { data: Buffer }

export interface SwarmSubmitOptions {
  /** Entry points: any peers of the swarm, tried in order; the swarm tells of more. */
  peer: string | string[]
  tileSize?: number
  /** How much is computed twice to catch wrong results (the coordinator's default, spot checks, if unset). */
  verify?: VerifyLevel
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
  /** A client node already up (a batch's large images go on its connections); made and stopped here otherwise. */
  node?: Awaited<ReturnType<typeof createClientNode>>
}

/**
 * Sends a job to a peer, follows its progress, writes the result. The
 * client owns the job until it has the result: if a peer is full or leaving
 * it tries the next; if the coordinator is lost mid-job, it resumes the job
 * on another peer, which first collects the tiles already finished from the
 * peers that hold them. It gives up only when no peer is left.
 */
export async function submitToSwarm (request: JobRequest | (Omit<JobRequest, 'input' | 'output'> & { input: string | Uint8Array, output?: string }), options: SwarmSubmitOptions): Promise<SubmitOutcome> {
  const started = performance.now()
  const emit = options.onEvent ?? (() => {})
  const roster = new PeerRoster(Array.isArray(options.peer) ? options.peer : [options.peer], options.busyRounds)
  // No output path (the library's caller takes the bytes): nothing is written.
  const output = request.output !== undefined ? await OutputFile.create(request.output) : undefined
  const dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  const node = options.node ?? await createClientNode({ dialTimeoutMs, swarmKey: options.swarmKey, privateKey: options.privateKey })
  try {
    const maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES
    const bytes = typeof request.input === 'string' ? await readInput(request.input, maxUploadBytes) : Buffer.from(request.input)
    if (bytes.length > maxUploadBytes) throw new LimitExceededError(`an image of ${bytes.length} bytes is over the upload limit of ${maxUploadBytes} bytes`)
    if (options.node === undefined) for (const label of roster.unchecked) emit({ event: 'note', message: uncheckedNote(label) })
    let tileSize = options.tileSize
    /** Peers the client has been told are excluded (over every coordinator the job had). */
    const excluded = new Set<string>()
    const tellExcluded = (figures: VerifyFigures | undefined): void => {
      for (const [peer, wrong] of Object.entries(figures?.excluded ?? {})) {
        if (excluded.has(peer)) continue
        excluded.add(peer)
        emit({ event: 'excluded', peer, wrong })
      }
    }

    /** One try on one peer: the result, or an Ended saying how it ended. */
    const attempt = async (candidate: Candidate): Promise<SubmitOutcome> => {
      const stream = await roster.open(node, candidate, { dialTimeoutMs, swarmKey: options.swarmKey })
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
        const resume = roster.resume
        if (resume !== undefined) emit({ event: 'resumed', coordinator: roster.resumeFrom!, on: candidate.label })
        else emit({ event: 'connected', peer: candidate.label, client: node.peerId.toString() })
        await wire.send({
          type: 'submit',
          v: PROTOCOL_VERSION,
          ops: toSpecs(request.steps),
          format: request.format,
          quality: request.quality,
          bytes: bytes.length,
          ...(tileSize !== undefined ? { tileSize } : {}),
          ...(options.verify !== undefined ? { verify: options.verify } : {}),
          ...(resume !== undefined ? { resume } : {}),
        })
        // The peer admits the job, or refuses it, before the image is sent.
        const admission = (await receive()).message
        if (admission.type === 'error') throw refusal(admission.name, admission.message, false)
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
              tellExcluded(msg.verify)
              if (msg.phase === 'tiles') emit({ event: 'progress', done: msg.done, total: msg.total, workers: msg.workers, ...(msg.placed !== undefined ? { placed: msg.placed } : {}), ...(msg.verify !== undefined ? { verify: msg.verify } : {}) })
              else if (msg.phase === 'encoding') emit({ event: 'encoding' })
              break
            case 'peers':
              roster.heard(msg)
              break
            case 'recovered':
              emit({ event: 'recovered', tiles: msg.tiles, total: msg.total })
              break
            case 'error':
              throw refusal(msg.name, msg.message, accepted)
            case 'result': {
              if (body === undefined || body.length === 0) throw new ProtocolError('the coordinator sent an empty result')
              await output?.commit(body)
              await wire.channel.close().catch(() => {})
              tellExcluded(msg.verify)
              const done = { event: 'done' as const, output: request.output ?? '', bytes: body.length, width: msg.width, height: msg.height, ms: performance.now() - started, tilesByPeer: msg.tilesByPeer, leases: msg.leases, ...(msg.verify !== undefined ? { verify: msg.verify } : {}) }
              emit(done)
              return { ...done, data: body }
            }
            default:
              throw new ProtocolError(`the coordinator sent '${msg.type}' out of turn`)
          }
        }
      } catch (err) {
        wire.channel.abort(err as Error)
        throw lostOrUnreachable(err, admitted, candidate.label)
      }
    }

    for (;;) {
      const candidate = await roster.next()
      try {
        return await attempt(candidate)
      } catch (err) {
        if (!(err instanceof Ended)) throw err
        roster.ended(candidate, err.ending, emit)
      }
    }
  } finally {
    await output?.discard()
    if (options.node === undefined) await node.stop()
  }
}

export function uncheckedNote (label: string): string {
  return `--peer ${label} has no /p2p/ peer id: the image goes to whichever peer answers there (add /p2p/<id> to have it checked)`
}

/** The stream broke, went silent or spoke nonsense: the job goes elsewhere (resumed, if the peer had admitted it). Anything else stands. */
export function lostOrUnreachable (err: unknown, admitted: boolean, label: string): unknown {
  if (err instanceof Ended || err instanceof JobFailedError) return err
  if (err instanceof TileswarmError && (err.name === 'NetworkError' || err.name === 'ProtocolError')) {
    return new Ended(admitted ? { kind: 'lost', reason: oneLine(err.message) } : { kind: 'unreachable', error: new NetworkError(`cannot submit to ${label}: ${oneLine(err.message)}`) })
  }
  return err
}
