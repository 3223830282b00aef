import { JobFailedError, NetworkError, ProtocolError } from '../common/errors.ts'
import { bytesPerPixel, planJob, resolvePipeline, type JobPlan, type RawImage, type Step, type Tile } from '../imaging/index.ts'
import { unpackPixels, type PixelEncoding } from '../protocol/pixels.ts'
import { tileChecksum } from '../protocol/checksum.ts'
import type { Channel } from '../protocol/framing.ts'
import type { BatchInfo, Grant, JobInfo, TileClientMessage, TileServerMessage } from '../protocol/messages.ts'
import type { OutputFormat } from '../imaging/index.ts'
import { MAX_ERROR_CHARS, PROTOCOL_VERSION } from '../protocol/constants.ts'
import { tileWorkerWire, type Outgoing, type Wire } from '../protocol/wire.ts'
import type { JobRef } from '../protocol/job-ref.ts'


export interface GrantedWork {
  leaseId: string
  tile: Tile
  leaseMs: number
  phase: number
  /** The contexts of the global steps before the phase, this tile's, by step. */
  contexts: Map<number, Uint8Array>
  /** How often the job's phases have started over: what was kept of an earlier start is stale. */
  restart: number
  /** The tile's haloed input, as the coordinator decoded it. */
  pixels: RawImage
}

/** One image of a batch: its file in, its encoded output back. */
export interface GrantedTask {
  leaseId: string
  leaseMs: number
  /** The image's slot in the batch's lease table. */
  slot: number
  key: string
  format: OutputFormat
  file: Buffer
}

export type ClaimReply = { kind: 'grant', work: GrantedWork } | { kind: 'task', task: GrantedTask } | { kind: 'none', reason: 'done' | 'wait' | 'cancelled' | 'excluded' }

type Reply = { message: TileServerMessage, body?: Buffer }

export interface CoordinatorLinkOptions {
  /** How long a request waits for its answer once it has left. */
  requestTimeoutMs: number
  /** Results are worth compressing on this link (it leaves this machine). */
  compress?: boolean
}

/** A tile's result: `checksum` is of the raw pixels; `body` is them, or them compressed (`encoding`). */
export interface TileResult {
  phase: number
  tile: number
  leaseId: string
  checksum: string
  body: Uint8Array
  encoding?: PixelEncoding
}

/** A batch's image: its encoded output and its size, `kept` from an earlier coordinator. */
export interface ImageOutput {
  slot: number
  leaseId: string
  checksum: string
  body: Uint8Array
  size: { width: number, height: number }
  kept: boolean
}

/** A summary the coordinator's own worker made, given this worker to keep. */
export interface KeptSummary {
  phase: number
  tile: number
  checksum: string
  data: Buffer
  context?: string
}

/** Tiles of a phase, as a bitmap: those this worker holds, or is to offer. */
export interface HeldTiles {
  phase: number
  tiles: Uint8Array
}

/** Which unit a failure is of, and who may do it instead. */
export interface FailureReport {
  /** A batch's slot: the failure is this image's alone, not the whole job's. */
  tile?: number
  /** The failure is this peer's own (its limits, its memory): another peer may do the unit. */
  handOn?: boolean
}

/**
 * A worker's link to one job's coordinator over one stream: requests carry a
 * rid, and a reader loop hands each reply to its request.
 */
export class CoordinatorLink {
  readonly ref: JobRef
  info!: JobInfo
  /** Set instead of `info` when the job is a batch. */
  batch: BatchInfo | undefined
  steps!: Step[]
  plan!: JobPlan
  /** Contexts every tile shares: the coordinator sends each once per session. */
  private readonly shared = new Map<number, Uint8Array>()
  /** The job's restarts as of the latest grant. */
  private restart = 0
  private readonly wire: Wire<TileClientMessage, TileServerMessage>
  private rid = 0
  private readonly waiting = new Map<number, { resolve: (r: Reply) => void, reject: (e: Error) => void, timer?: NodeJS.Timeout }>()
  private failure: Error | undefined
  private readonly requestTimeoutMs: number
  /** The reader waits as long as the link lives; ending the link ends the wait. */
  private readonly reading = new AbortController()

  /** Results are worth compressing on this link (it leaves this machine). */
  readonly compress: boolean
  /** Offers the held tiles a claim's answer reserved for this worker (set by a session that holds some). */
  offering: ((reserved: HeldTiles) => Promise<void>) | undefined
  /** Keeps the summaries a claim's answer gave this worker to keep (set by a session with a result cache). */
  keeping: ((kept: KeptSummary[]) => void) | undefined

  constructor (channel: Channel, ref: JobRef, options: CoordinatorLinkOptions) {
    this.wire = tileWorkerWire(channel)
    this.ref = ref
    this.compress = options.compress ?? false
    this.requestTimeoutMs = options.requestTimeoutMs
    void this.readLoop()
  }

  private async readLoop (): Promise<void> {
    try {
      while (!this.wire.channel.isClosed) {
        const reply = await this.wire.receive({ signal: this.reading.signal })
        const rid = reply.message.rid
        const entry = rid === undefined ? undefined : this.waiting.get(rid)
        if (entry === undefined) throw new ProtocolError(`reply to unknown request ${String(rid)}`)
        this.waiting.delete(rid!)
        clearTimeout(entry.timer)
        entry.resolve(reply)
      }
      this.fail(new NetworkError('coordinator closed the session'))
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)))
    }
  }

  private fail (err: Error): void {
    this.failure ??= err
    for (const entry of this.waiting.values()) {
      clearTimeout(entry.timer)
      entry.reject(this.failure)
    }
    this.waiting.clear()
    this.reading.abort()
    this.wire.channel.abort(err)
  }

  private async request (message: Outgoing<TileClientMessage>, options: { body?: Uint8Array, timeoutMs?: number } = {}): Promise<Reply> {
    const { body, timeoutMs = this.requestTimeoutMs } = options
    if (this.failure !== undefined) throw this.failure
    const rid = message.rid
    let entry!: { resolve: (r: Reply) => void, reject: (e: Error) => void, timer?: NodeJS.Timeout }
    const reply = new Promise<Reply>((resolve, reject) => {
      entry = { resolve, reject }
      this.waiting.set(rid, entry)
    })
    // Nobody awaits `reply` while the send is in flight: keep a failure then from going unhandled.
    reply.catch(() => {})
    try {
      await this.wire.send(message, body)
    } catch (err) {
      this.waiting.delete(rid)
      throw err
    }
    // The wait for an answer starts once the request has left: a large body on a slow link is not silence.
    if (this.waiting.has(rid)) {
      entry.timer = setTimeout(() => {
        this.waiting.delete(rid)
        const err = new NetworkError(`coordinator did not answer ${message.type} within ${timeoutMs} ms`)
        entry.reject(err)
        this.fail(err)
      }, timeoutMs)
      entry.timer.unref()
    }
    const answer = await reply
    if (answer.message.type === 'error') throw new JobFailedError(answer.message.message)
    return answer
  }

  private nextRid (): number {
    return ++this.rid
  }

  /**
   * Joins the job, saying which of its tiles' results this worker holds
   * (`held`, bitmaps by phase); the answer says which of those of the
   * current phase to offer (later phases' come as claims' answers).
   */
  async join (held?: Map<number, Uint8Array>): Promise<{ info?: JobInfo, reserved?: HeldTiles }> {
    const phases = [...held ?? []]
    const layout = phases.length === 1 && phases[0]![0] === 0 ? {} : { held: phases.map(([phase, bitmap]) => ({ phase, bytes: bitmap.length })) }
    const body = phases.length > 0 ? Buffer.concat(phases.map(([, bitmap]) => bitmap)) : undefined
    const { message, body: reply } = await this.request({ type: 'join', v: PROTOCOL_VERSION, rid: this.nextRid(), jobId: this.ref.jobId, ...(body !== undefined ? layout : {}) }, { body })
    if (message.type === 'batch' && message.jobId === this.ref.jobId) {
      this.batch = message
      this.steps = resolvePipeline(message.ops)
      return {}
    }
    if (message.type !== 'job' || message.jobId !== this.ref.jobId) throw new ProtocolError(`expected job info, got ${message.type}`)
    this.info = message
    // The coordinator's pipeline is checked like any user input, and planned here as there.
    this.steps = resolvePipeline(message.ops)
    this.plan = planJob(this.steps, { width: message.width, height: message.height, format: message.format })
    if (this.plan.phases.length !== message.phases) throw new ProtocolError(`the job has ${message.phases} phases, and ${this.plan.phases.length} here`)
    return { info: message, ...(reply !== undefined ? { reserved: { phase: message.phase ?? 0, tiles: reply } } : {}) }
  }

  /** A result this worker held from an earlier coordinator of the job (of `phase`, computed with contexts of digest `context`). */
  async offer (held: { phase: number, tile: number, checksum: string, context?: string | undefined }, pixels: Uint8Array): Promise<'accepted' | 'duplicate' | 'rejected'> {
    const { phase, tile, checksum, context } = held
    const { message } = await this.request({ type: 'offer', rid: this.nextRid(), tile, checksum, ...(phase > 0 ? { phase } : {}), ...(context !== undefined ? { context } : {}) }, { body: pixels })
    if (message.type !== 'ack') throw new ProtocolError(`expected an ack, got ${message.type}`)
    return message.status
  }

  /** The coordinator may hold a claim for the job's park time before it answers; not if `park` is false (this worker has other jobs). */
  async claim (options: { park?: boolean } = {}): Promise<ClaimReply> {
    for (;;) {
      const { message, body } = await this.request({ type: 'claim', rid: this.nextRid(), ...(options.park === false ? { park: false } : {}) }, { timeoutMs: (this.batch ?? this.info).parkMs + this.requestTimeoutMs })
      if (message.type === 'keep') {
        this.keepSafe(message, body ?? Buffer.alloc(0))
        continue
      }
      if (message.type !== 'offers') return this.claimed(message, body)
      // A resumed job's phase began with tiles this worker kept: offered before anything is computed.
      if (this.offering === undefined) throw new ProtocolError('asked to offer held tiles, and none are held')
      await this.offering({ phase: message.phase, tiles: body ?? Buffer.alloc(0) })
    }
  }

  /** The coordinator's own summaries of a phase, to keep for its next coordinator (if this worker keeps results at all). */
  private keepSafe (message: Extract<TileServerMessage, { type: 'keep' }>, body: Buffer): void {
    let at = 0
    const kept: KeptSummary[] = []
    for (const { tile, bytes, checksum, context } of message.tiles) {
      if (tile >= this.info.tiles || at + bytes > body.length) throw new ProtocolError(`summaries to keep that do not fit the job (tile ${tile})`)
      // Copies: a view would keep the whole body alive for as long as the least of them.
      kept.push({ phase: message.phase, tile, checksum, data: Buffer.from(body.subarray(at, at + bytes)), ...(context !== undefined ? { context } : {}) })
      at += bytes
    }
    this.keeping?.(kept)
  }

  private claimed (message: TileServerMessage, body: Buffer | undefined): ClaimReply {
    if (message.type === 'none') return { kind: 'none', reason: message.reason }
    if (message.type === 'task' && this.batch !== undefined) {
      if (body === undefined || message.tile >= this.batch.images) throw new ProtocolError(`task ${message.tile} does not fit the batch`)
      return { kind: 'task', task: { leaseId: message.leaseId, leaseMs: message.leaseMs, slot: message.tile, key: message.key, format: message.format, file: body } }
    }
    if (message.type !== 'grant') throw new ProtocolError(`expected a grant, got ${message.type}`)
    return { kind: 'grant', work: this.checkGrant(message, body) }
  }

  /** Nothing in a grant is trusted until it fits the job. */
  private checkGrant (grant: Grant, body: Buffer | undefined): GrantedWork {
    const { info, plan } = this
    const { core, haloed } = grant
    const inside = haloed.x <= core.x && haloed.y <= core.y &&
      core.x + core.width <= haloed.x + haloed.width && core.y + core.height <= haloed.y + haloed.height &&
      haloed.x + haloed.width <= plan.width && haloed.y + haloed.height <= plan.height
    const phase = plan.phases[grant.phase]
    // A tile is at most the job's tile size, grown by the phase's halo: what the pixels inflate to is bounded before a byte is inflated.
    const sized = phase !== undefined && core.width <= info.tileSize && core.height <= info.tileSize && haloed.width <= core.width + 2 * phase.halo && haloed.height <= core.height + 2 * phase.halo
    if (!inside || !sized || grant.tile >= info.tiles) throw new ProtocolError(`grant for tile ${grant.tile} of phase ${grant.phase} does not fit the job`)
    const contexts = new Map<number, Uint8Array>()
    const restart = grant.restart ?? 0
    // The job's phases started over: shared contexts of the earlier start are stale (the new ones come with this grant).
    if (restart > this.restart) {
      this.shared.clear()
      this.restart = restart
    }
    // A context may be empty (no edge pixels around a tile): a grant of only those has no body.
    const bytes = body ?? Buffer.alloc(0)
    let at = 0
    for (const c of grant.contexts) {
      const data = bytes.subarray(at, at + c.bytes)
      if (data.length !== c.bytes) throw new ProtocolError(`grant for tile ${grant.tile} is short of its contexts`)
      at += c.bytes
      // A shared context outlives this grant: a copy, not a view that keeps the whole body.
      if (c.shared) this.shared.set(c.step, Buffer.from(data))
      else contexts.set(c.step, data)
    }
    const packed = bytes.subarray(at)
    if (packed.length !== grant.pixels.bytes) throw new ProtocolError(`grant for tile ${grant.tile} carries ${packed.length} bytes of pixels, not the ${grant.pixels.bytes} it says`)
    const rawBytes = haloed.width * haloed.height * bytesPerPixel(plan.format)
    // Raw pixels are a view of the body, which nothing else keeps.
    const data = unpackPixels(packed, grant.pixels.encoding, rawBytes)
    if (data.length !== rawBytes) throw new ProtocolError(`grant for tile ${grant.tile} carries ${data.length} bytes of pixels, not the ${rawBytes} of its ${haloed.width}x${haloed.height} rectangle`)
    if (grant.pixels.checksum !== undefined && tileChecksum(data) !== grant.pixels.checksum) throw new ProtocolError(`grant for tile ${grant.tile}: its pixels fail their checksum`)
    // Every global step before the phase needs its context: this tile's, or the shared one sent earlier.
    for (const earlier of plan.phases.slice(0, grant.phase)) {
      const step = earlier.end
      if (!contexts.has(step) && this.shared.has(step)) contexts.set(step, this.shared.get(step)!)
      if (!contexts.has(step)) throw new ProtocolError(`grant for tile ${grant.tile} of phase ${grant.phase} lacks the context of step ${step}`)
    }
    return { leaseId: grant.leaseId, leaseMs: grant.leaseMs, tile: { index: grant.tile, core, haloed }, phase: grant.phase, contexts, restart, pixels: { width: haloed.width, height: haloed.height, ...plan.format, data } }
  }

  async result ({ phase, tile, leaseId, checksum, body, encoding }: TileResult): Promise<'accepted' | 'duplicate' | 'rejected'> {
    const { message } = await this.request({ type: 'result', rid: this.nextRid(), phase, tile, leaseId, checksum, ...(encoding !== undefined ? { encoding } : {}) }, { body })
    if (message.type !== 'ack') throw new ProtocolError(`expected an ack, got ${message.type}`)
    return message.status
  }

  async output ({ slot, leaseId, checksum, body, size, kept }: ImageOutput): Promise<'accepted' | 'duplicate' | 'rejected'> {
    const { message } = await this.request({ type: 'result', rid: this.nextRid(), phase: 0, tile: slot, leaseId, checksum, ...size, ...(kept ? { kept } : {}) }, { body })
    if (message.type !== 'ack') throw new ProtocolError(`expected an ack, got ${message.type}`)
    return message.status
  }

  async renew (leaseId: string): Promise<boolean> {
    const { message } = await this.request({ type: 'renew', rid: this.nextRid(), leaseId })
    return message.type === 'renewed' && message.ok
  }

  async release (leaseId: string): Promise<void> {
    await this.request({ type: 'release', rid: this.nextRid(), leaseId })
  }

  /** The outputs of whole images this worker holds (task keys): said once, after joining a batch; not answered. */
  async held (keys: string[]): Promise<void> {
    const body = Buffer.concat(keys.map(k => Buffer.from(k, 'hex')))
    await this.wire.send({ type: 'held', rid: this.nextRid() }, body.length > 0 ? body : undefined)
  }

  /** This worker cannot compute the job: said, not answered. */
  async reportFailure (message: string, { tile, handOn = false }: FailureReport = {}): Promise<void> {
    if (this.failure === undefined) await this.wire.send({ type: 'fail', rid: this.nextRid(), message: message.slice(0, MAX_ERROR_CHARS), ...(tile !== undefined ? { tile } : {}), ...(handOn ? { handOn } : {}) })
  }

  async close (): Promise<void> {
    await this.wire.channel.close()
    this.fail(new NetworkError('session closed'))
  }
}
