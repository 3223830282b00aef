import { basename } from 'node:path'
import { DEFAULT_MAX_UPLOAD_BYTES, RECEIVING_EVENT_MS, SUBMIT_IDLE_MS } from '../common/defaults.ts'
import { LimitExceededError, ProtocolError } from '../common/errors.ts'
import { toSpecs } from '../imaging/index.ts'
import { DEFAULT_PRIORITY, MAX_INPUT_NAME_CHARS, PROTOCOL_VERSION, type Priority } from '../protocol/constants.ts'
import type { SubmitResult, SubmitServerMessage } from '../protocol/messages.ts'
import type { VerifyFigures, VerifyLevel } from '../protocol/verify-level.ts'
import { PeerTries, type Attempt, type SubmitClientWire, type SwarmConnectOptions } from './attempts.ts'
import { OutputFile, readInput } from './files.ts'
import { checkPriority, type JobRequest } from './options.ts'
import { refusal, type Candidate, type PeerRoster } from './roster.ts'

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
  /** The resumed job collected this many finished tiles (of `phase` of `phases`, in a job in phases) instead of computing them again. */
  | { event: 'recovered', tiles: number, total: number, phase?: number, phases?: number }
  | { event: 'done', output: string, bytes: number, width: number, height: number, ms: number, tilesByPeer: Record<string, number>, leases: SubmitResult['leases'], verify?: VerifyFigures }

export type SubmitDone = Extract<SubmitEvent, { event: 'done' }>

/** What one image sent to the swarm gives: the 'done' event, and the encoded result itself. */
export type SubmitOutcome = SubmitDone & { data: Buffer }

export interface SwarmSubmitOptions extends SwarmConnectOptions {
  tileSize?: number
  /** How much is computed twice to catch wrong results (the coordinator's default, spot checks, if unset). */
  verify?: VerifyLevel
  /** How the swarm's workers weigh the job against others: high, normal (the default) or low; a peer may refuse high (--allow-priority). */
  priority?: Priority
  /** Silence from the coordinator for this long and the job goes elsewhere (it reports at least every 5 s). */
  idleTimeoutMs?: number
  maxUploadBytes?: number
  onEvent?: (event: SubmitEvent) => void
}

/** One image to send: a file, or its bytes; written to `output` if one is given. */
/** `name`: what job lists call an input given as bytes (a file's input is named by its path). */
export type SubmitRequest = JobRequest | (Omit<JobRequest, 'input' | 'output'> & { input: string | Uint8Array, output?: string, name?: string })

/**
 * Sends a job to a peer, follows its progress, writes the result. The
 * client owns the job until it has the result: if a peer is full or leaving
 * it tries the next; if the coordinator is lost mid-job, it resumes the job
 * on another peer, which first collects the tiles already finished from the
 * peers that hold them. It gives up only when no peer is left.
 */
export async function submitToSwarm (request: SubmitRequest, options: SwarmSubmitOptions): Promise<SubmitOutcome> {
  if (options.priority !== undefined) checkPriority(options.priority, 'priority')
  const started = performance.now()
  const emit = options.onEvent ?? (() => {})
  const tries = new PeerTries(options)
  // No output path (the library's caller takes the bytes): nothing is written.
  const output = request.output !== undefined ? await OutputFile.create(request.output) : undefined
  await tries.start()
  try {
    const bytes = await readUpload(request.input, options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES)
    await output?.checkRoom(bytes, request.steps, request.format)
    tries.noteUnchecked(emit)
    const job = new ImageJob({ request, bytes, output, options, emit, started })
    return await tries.untilDone(async candidate => await job.attempt(tries, candidate), emit)
  } finally {
    await output?.discard()
    await tries.stop()
  }
}

async function readUpload (input: string | Uint8Array, maxUploadBytes: number): Promise<Buffer> {
  const bytes = typeof input === 'string' ? await readInput(input, maxUploadBytes) : Buffer.from(input)
  if (bytes.length > maxUploadBytes) throw new LimitExceededError(`an image of ${bytes.length} bytes is over the upload limit of ${maxUploadBytes} bytes`)
  return bytes
}

type ServerMessage<T extends SubmitServerMessage['type']> = Extract<SubmitServerMessage, { type: T }>
type Receive = () => ReturnType<SubmitClientWire['receive']>

/**
 * One image's job as the client owns it over its tries: what it sends, and
 * what it has heard (the tile size a resumed job must cut again, the peers
 * excluded over every coordinator the job had).
 */
class ImageJob {
  private readonly request: SubmitRequest
  private readonly bytes: Buffer
  private readonly output: OutputFile | undefined
  private readonly options: SwarmSubmitOptions
  private readonly emit: (event: SubmitEvent) => void
  private readonly started: number
  private tileSize: number | undefined
  private readonly excluded = new Set<string>()

  constructor (init: { request: SubmitRequest, bytes: Buffer, output: OutputFile | undefined, options: SwarmSubmitOptions, emit: (event: SubmitEvent) => void, started: number }) {
    this.request = init.request
    this.bytes = init.bytes
    this.output = init.output
    this.options = init.options
    this.emit = init.emit
    this.started = init.started
    this.tileSize = init.options.tileSize
  }

  /** One try on one peer: the result, or a TryEndedError saying how it ended. */
  async attempt (tries: PeerTries, candidate: Candidate): Promise<SubmitOutcome> {
    return await tries.on(candidate, async attempt => {
      const receive = this.receiver(attempt.wire)
      const resume = tries.roster.resume
      if (resume !== undefined) this.emit({ event: 'resumed', coordinator: tries.roster.resumeFrom!, on: candidate.label })
      else this.emit({ event: 'connected', peer: candidate.label, client: tries.node.peerId.toString() })
      await this.offer(attempt, receive, resume)
      return await this.follow(attempt, receive, tries.roster)
    })
  }

  /** The coordinator's next message, within the idle time; a result's download told as it comes, a few times a second. */
  private receiver (wire: SubmitClientWire): Receive {
    let lastReceiving = 0
    return async () => await wire.receive({
      timeoutMs: this.options.idleTimeoutMs ?? SUBMIT_IDLE_MS,
      onBody: (received, total) => {
        if (received === total || performance.now() - lastReceiving > RECEIVING_EVENT_MS) {
          lastReceiving = performance.now()
          this.emit({ event: 'receiving', received, total })
        }
      },
    })
  }

  /** The job described; the peer admits it, or refuses it, before the image is sent. */
  private async offer (attempt: Attempt, receive: Receive, resume: PeerRoster['resume']): Promise<void> {
    await attempt.wire.send({
      type: 'submit',
      v: PROTOCOL_VERSION,
      ops: toSpecs(this.request.steps),
      format: this.request.format,
      quality: this.request.quality,
      bytes: this.bytes.length,
      ...(this.request.strip === true ? { strip: true } : {}),
      ...(this.tileSize !== undefined ? { tileSize: this.tileSize } : {}),
      ...(this.options.verify !== undefined ? { verify: this.options.verify } : {}),
      ...(resume !== undefined ? { resume } : {}),
      ...inputNameOf(this.request),
      // Normal is unsaid: a peer of an older version takes the job as it is.
      ...(this.options.priority !== undefined && this.options.priority !== DEFAULT_PRIORITY ? { priority: this.options.priority } : {}),
    })
    const admission = (await receive()).message
    if (admission.type === 'error') throw refusal(admission, { accepted: false })
    if (admission.type !== 'ready') throw new ProtocolError(`expected the peer to admit the job, got ${admission.type}`)
    attempt.admitted = true
    await attempt.wire.send({ type: 'upload' }, this.bytes)
    this.emit({ event: 'uploaded', bytes: this.bytes.length })
  }

  /** The coordinator's word until the result. */
  private async follow (attempt: Attempt, receive: Receive, roster: PeerRoster): Promise<SubmitOutcome> {
    let accepted = false
    for (;;) {
      const { message: msg, body } = await receive()
      switch (msg.type) {
        case 'accepted':
          accepted = true
          this.accepted(msg)
          break
        case 'progress':
          this.progress(msg)
          break
        case 'peers':
          roster.heard(msg)
          break
        case 'recovered':
          this.emit({ event: 'recovered', tiles: msg.tiles, total: msg.total, ...(msg.phase !== undefined && msg.phases !== undefined ? { phase: msg.phase, phases: msg.phases } : {}) })
          break
        case 'error':
          throw refusal(msg, { accepted })
        case 'result':
          return await this.result(attempt.wire, msg, body)
        default:
          throw new ProtocolError(`the coordinator sent '${msg.type}' out of turn`)
      }
    }
  }

  private accepted (msg: ServerMessage<'accepted'>): void {
    // A resumed job must cut the same tiles, or nothing finished fits.
    this.tileSize = msg.tileSize
    this.emit({ event: 'accepted', jobId: msg.jobId, width: msg.width, height: msg.height, tiles: msg.tiles, phases: msg.phases, tileSize: msg.tileSize, halo: msg.halo, notes: msg.notes })
  }

  private progress (msg: ServerMessage<'progress'>): void {
    this.tellExcluded(msg.verify)
    if (msg.phase === 'tiles') this.emit({ event: 'progress', done: msg.done, total: msg.total, workers: msg.workers, ...(msg.placed !== undefined ? { placed: msg.placed } : {}), ...(msg.verify !== undefined ? { verify: msg.verify } : {}) })
    else if (msg.phase === 'encoding') this.emit({ event: 'encoding' })
  }

  private async result (wire: SubmitClientWire, msg: ServerMessage<'result'>, body: Buffer | undefined): Promise<SubmitOutcome> {
    if (body === undefined || body.length === 0) throw new ProtocolError('the coordinator sent an empty result')
    await this.output?.commit(body)
    await wire.channel.close().catch(() => {})
    this.tellExcluded(msg.verify)
    const done = { event: 'done' as const, output: this.request.output ?? '', bytes: body.length, width: msg.width, height: msg.height, ms: performance.now() - this.started, tilesByPeer: msg.tilesByPeer, leases: msg.leases, ...(msg.verify !== undefined ? { verify: msg.verify } : {}) }
    this.emit(done)
    return { ...done, data: body }
  }

  /** Peers newly excluded, told once each. */
  private tellExcluded (figures: VerifyFigures | undefined): void {
    for (const [peer, wrong] of Object.entries(figures?.excluded ?? {})) {
      if (this.excluded.has(peer)) continue
      this.excluded.add(peer)
      this.emit({ event: 'excluded', peer, wrong })
    }
  }
}

/** The input's file name for job lists, if it has one that fits the wire. */
function inputNameOf (request: SubmitRequest): { name?: string } {
  const name = typeof request.input === 'string' ? basename(request.input) : 'name' in request ? request.name : undefined
  if (name === undefined) return {}
  const shown = name.replace(/[\x00-\x1f\x7f/\\]/g, '_').slice(0, MAX_INPUT_NAME_CHARS)
  return shown.length > 0 ? { name: shown } : {}
}
