import { readFile, stat } from 'node:fs/promises'
import { SUBMIT_IDLE_MS } from '../common/defaults.ts'
import { LimitExceededError, ProtocolError, TileswarmError } from '../common/errors.ts'
import { toSpecs } from '../imaging/index.ts'
import { DEFAULT_PRIORITY, PROTOCOL_VERSION, type Priority } from '../protocol/constants.ts'
import type { SubmitServerMessage } from '../protocol/messages.ts'
import type { Attempt, PeerTries, SubmitClientWire } from './attempts.ts'
import type { BatchEvent, BatchRequest } from './batch-events.ts'
import type { BatchItem, BatchSink } from './batch-plan.ts'
import type { Tally } from './batch-tally.ts'
import { refusal, type Candidate, type PeerRoster } from './roster.ts'

/** What every try of a batch's whole images shares. */
export interface WholeImagesContext {
  request: BatchRequest
  sink: BatchSink
  counts: Tally
  /** Each image's pixels, for the megapixels done. */
  pixels: Map<BatchItem, number>
  maxUploadBytes: number
  idleTimeoutMs?: number
  /** Normal if unsaid (and then not sent, for peers of an older version). */
  priority?: Priority
  emit: (event: BatchEvent) => void
}

/** The whole images, on one peer after another until every one is back, done or failed. */
export async function sendWholeImages (tries: PeerTries, context: WholeImagesContext, items: BatchItem[]): Promise<void> {
  let pending = items
  while (pending.length > 0) {
    await tries.tryNext(async candidate => {
      const attempt = new WholeImagesTry(context, pending)
      try {
        await attempt.run(tries, candidate)
      } finally {
        pending = attempt.notBack
      }
    }, context.emit)
  }
}

/** Files read ahead of the one going up: a few, as each may be a large photo held in memory until sent. */
const READ_AHEAD = 4

type ServerMessage<T extends SubmitServerMessage['type']> = Extract<SubmitServerMessage, { type: T }>

/**
 * One try of the whole images still to do, on one peer, as one job on one
 * connection: images go up as the coordinator asks for them, while outputs
 * come down and are written at once. Over when every image is done or
 * failed, or with a TryEndedError; the images not back go to the next try.
 */
class WholeImagesTry {
  private readonly context: WholeImagesContext
  private readonly items: BatchItem[]
  private readonly settled = new Set<BatchItem>()
  private sent = 0
  /** Images whose file is being read or was read, not yet sent: by index. */
  private readonly reads = new Map<number, Promise<Buffer>>()
  private readsStarted = 0
  private uploadLimit: number
  private uploading: Promise<void> = Promise.resolve()

  constructor (context: WholeImagesContext, items: BatchItem[]) {
    this.context = context
    this.items = items
    this.uploadLimit = context.maxUploadBytes
  }

  /** The images not back. */
  get notBack (): BatchItem[] {
    return this.items.filter(item => !this.settled.has(item))
  }

  async run (tries: PeerTries, candidate: Candidate): Promise<void> {
    const { emit, request } = this.context
    // Done with once this try's uploads have stopped: one may still be settling a file it could not read.
    await tries.on(candidate, async attempt => {
      const resume = tries.roster.resume
      if (resume !== undefined) emit({ event: 'resumed', coordinator: tries.roster.resumeFrom!, on: candidate.label, images: this.items.length })
      else emit({ event: 'connected', peer: candidate.label, client: tries.node.peerId.toString() })
      await attempt.wire.send({ type: 'batch', v: PROTOCOL_VERSION, ops: toSpecs(request.steps), quality: request.quality, images: this.items.length, ...(request.strip === true ? { strip: true } : {}), ...(request.strip === true ? { strip: true } : {}), ...(resume !== undefined ? { resume } : {}), ...(this.context.priority !== undefined && this.context.priority !== DEFAULT_PRIORITY ? { priority: this.context.priority } : {}) })
      await this.follow(attempt, tries.roster)
    }, async () => { await this.uploading.catch(() => {}) })
  }

  /** The coordinator's word until the batch's end. */
  private async follow (attempt: Attempt, roster: PeerRoster): Promise<void> {
    const { emit, counts } = this.context
    for (;;) {
      const { message: msg, body } = await attempt.wire.receive({ timeoutMs: this.context.idleTimeoutMs ?? SUBMIT_IDLE_MS })
      switch (msg.type) {
        case 'started':
          attempt.admitted = true
          this.uploadLimit = Math.min(this.context.maxUploadBytes, msg.maxUploadBytes)
          emit({ event: 'started', jobId: msg.jobId })
          break
        case 'send':
          this.send(attempt.wire, msg.count)
          break
        case 'image-done':
          await this.done(msg, body)
          break
        case 'image-failed':
          this.failed(msg)
          break
        case 'progress':
          counts.heard(msg.workers)
          break
        case 'peers':
          roster.heard(msg)
          break
        case 'end':
          await this.uploading
          await attempt.wire.channel.close().catch(() => {})
          return
        case 'error':
          throw refusal(msg, { accepted: attempt.admitted })
        default:
          throw new ProtocolError(`the coordinator sent '${msg.type}' in a batch`)
      }
    }
  }

  /**
   * The next `count` images go up, in order, after those already going; the
   * files are read a few ahead of the one going up, so a read's round trips
   * (a busy disk, a busy event loop) do not leave the coordinator waiting.
   */
  private send (wire: SubmitClientWire, count: number): void {
    const from = this.sent
    this.sent = Math.min(this.items.length, this.sent + count)
    for (let i = from; i < this.sent; i++) {
      this.uploading = this.uploading.then(async () => {
        for (; this.readsStarted < Math.min(this.sent, i + READ_AHEAD); this.readsStarted++) this.reads.set(this.readsStarted, this.read(this.items[this.readsStarted]!))
        const file = await this.reads.get(i)!
        this.reads.delete(i)
        await wire.send({ type: 'image', index: i, format: this.items[i]!.format }, file)
      })
    }
    this.uploading.catch(() => {})
  }

  /** The image's file; empty if it cannot be read or is over the limit, so the batch's count holds (the failure is this client's word for it). */
  private async read (item: BatchItem): Promise<Buffer> {
    try {
      const size = (await stat(item.input)).size
      if (size > this.uploadLimit) throw new LimitExceededError(`${size} bytes is over the upload limit of ${this.uploadLimit} bytes (--max-upload-bytes${this.uploadLimit < this.context.maxUploadBytes ? ', the coordinating peer\'s' : ''})`)
      return await readFile(item.input)
    } catch (err) {
      this.settled.add(item)
      this.context.counts.failed(item.input, err instanceof TileswarmError ? err : { name: 'InvalidImageError', message: `cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` })
      return Buffer.alloc(0)
    }
  }

  private async done (msg: ServerMessage<'image-done'>, body: Buffer | undefined): Promise<void> {
    const { sink, emit, counts, pixels } = this.context
    const item = this.items[msg.index]
    if (item === undefined || body === undefined || body.length === 0 || this.settled.has(item)) throw new ProtocolError(`the coordinator sent image ${msg.index} unasked`)
    this.settled.add(item)
    await sink.write(item.output, body)
    emit({ event: 'image', input: item.input, output: sink.describe(item.output), width: msg.width, height: msg.height, bytes: body.length, by: msg.by, recovered: msg.recovered })
    counts.ok(pixels.get(item) ?? 0, [msg.by])
  }

  private failed (msg: ServerMessage<'image-failed'>): void {
    const item = this.items[msg.index]
    if (item === undefined) throw new ProtocolError(`the coordinator failed image ${msg.index}, not in the batch`)
    // This client's own reason (a file it could not read) stands.
    if (this.settled.has(item)) return
    this.settled.add(item)
    this.context.counts.failed(item.input, msg)
  }
}
