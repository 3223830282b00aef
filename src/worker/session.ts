import { JobFailedError, NetworkError, ProtocolError } from '../errors.ts'
import { bytesPerPixel, resolvePipeline, type RawImage, type Step, type Tile } from '../imaging/index.ts'
import type { Channel } from '../protocol/framing.ts'
import { TileServerMessage, type JobInfo, type Grant } from '../protocol/messages.ts'

export interface JobRef {
  jobId: string
  coordinator: string
  addrs: string[]
}

export interface GrantedWork {
  leaseId: string
  tile: Tile
  pixels: RawImage
  leaseMs: number
}

export type ClaimReply = { kind: 'grant', work: GrantedWork } | { kind: 'none', reason: 'done' | 'wait' | 'cancelled' }

/** Waiting this long for a reader means the session has been idle that long, which is fine. */
const READ_IDLE_MS = 24 * 3600 * 1000

/**
 * A worker's session with one job's coordinator over one stream: requests
 * carry a rid, and a reader loop hands each reply to its request.
 */
export class WorkerSession {
  readonly ref: JobRef
  info!: JobInfo
  steps!: Step[]
  private readonly channel: Channel
  private rid = 0
  private readonly waiting = new Map<number, { resolve: (m: { header: TileServerMessage, body?: Buffer }) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }>()
  private failure: Error | undefined
  private readonly requestTimeoutMs: number

  constructor (channel: Channel, ref: JobRef, requestTimeoutMs: number) {
    this.channel = channel
    this.ref = ref
    this.requestTimeoutMs = requestTimeoutMs
    void this.readLoop()
  }

  get failed (): Error | undefined { return this.failure }

  private async readLoop (): Promise<void> {
    try {
      while (!this.channel.isClosed) {
        const { header, body } = await this.channel.receive({ timeoutMs: READ_IDLE_MS })
        const parsed = TileServerMessage.safeParse(header)
        if (!parsed.success) throw new ProtocolError(`malformed reply from coordinator: ${parsed.error.issues[0]?.message ?? 'invalid'}`)
        const rid = parsed.data.rid
        const entry = rid === undefined ? undefined : this.waiting.get(rid)
        if (entry === undefined) throw new ProtocolError(`reply to unknown request ${String(rid)}`)
        this.waiting.delete(rid!)
        clearTimeout(entry.timer)
        entry.resolve({ header: parsed.data, body })
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
    this.channel.abort(err)
  }

  private async request (header: Record<string, unknown>, body?: Uint8Array, timeoutMs = this.requestTimeoutMs): Promise<{ header: TileServerMessage, body?: Buffer }> {
    if (this.failure !== undefined) throw this.failure
    const rid = ++this.rid
    const reply = new Promise<{ header: TileServerMessage, body?: Buffer }>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid)
        const err = new NetworkError(`coordinator did not answer ${String(header.type)} within ${timeoutMs} ms`)
        reject(err)
        this.fail(err)
      }, timeoutMs)
      timer.unref()
      this.waiting.set(rid, { resolve, reject, timer })
    })
    // Nobody awaits `reply` while the send is in flight: keep a failure then from going unhandled.
    reply.catch(() => {})
    try {
      await this.channel.send({ ...header, rid }, body)
    } catch (err) {
      const entry = this.waiting.get(rid)
      if (entry !== undefined) clearTimeout(entry.timer)
      this.waiting.delete(rid)
      throw err
    }
    const answer = await reply
    if (answer.header.type === 'error') throw new JobFailedError(answer.header.message)
    return answer
  }

  async join (): Promise<JobInfo> {
    const { header } = await this.request({ type: 'join', v: 1, jobId: this.ref.jobId })
    if (header.type !== 'job' || header.jobId !== this.ref.jobId) throw new ProtocolError(`expected job info, got ${header.type}`)
    this.info = header
    // The coordinator's pipeline is checked like any user input.
    this.steps = resolvePipeline(header.ops)
    return header
  }

  async claim (parkMs: number): Promise<ClaimReply> {
    const { header, body } = await this.request({ type: 'claim' }, undefined, parkMs + this.requestTimeoutMs)
    if (header.type === 'none') return { kind: 'none', reason: header.reason }
    if (header.type !== 'grant') throw new ProtocolError(`expected a grant, got ${header.type}`)
    return { kind: 'grant', work: this.checkGrant(header, body) }
  }

  /** Nothing in a grant is trusted until it fits the job. */
  private checkGrant (grant: Grant, body: Buffer | undefined): GrantedWork {
    const { info } = this
    const { core, haloed } = grant
    const inside = haloed.x <= core.x && haloed.y <= core.y &&
      core.x + core.width <= haloed.x + haloed.width && core.y + core.height <= haloed.y + haloed.height &&
      haloed.x + haloed.width <= info.width && haloed.y + haloed.height <= info.height
    if (!inside || grant.tile >= info.tiles) throw new ProtocolError(`grant for tile ${grant.tile} does not fit the job`)
    const expected = haloed.width * haloed.height * bytesPerPixel(info.format)
    if (body === undefined || body.length !== expected) throw new ProtocolError(`grant for tile ${grant.tile} carries ${body?.length ?? 0} bytes, expected ${expected}`)
    return {
      leaseId: grant.leaseId,
      leaseMs: grant.leaseMs,
      tile: { index: grant.tile, core, haloed },
      pixels: { width: haloed.width, height: haloed.height, ...info.format, data: body },
    }
  }

  async result (tile: number, leaseId: string, checksum: string, pixels: Uint8Array): Promise<'accepted' | 'duplicate' | 'rejected'> {
    const { header } = await this.request({ type: 'result', tile, leaseId, checksum }, pixels)
    if (header.type !== 'ack') throw new ProtocolError(`expected an ack, got ${header.type}`)
    return header.status
  }

  /** Fault injection: the result stream dies halfway through its body. */
  async dropResultHalfway (tile: number, leaseId: string, checksum: string, pixels: Uint8Array): Promise<void> {
    await this.channel.sendHalfThenAbort({ type: 'result', rid: ++this.rid, tile, leaseId, checksum }, pixels)
    this.fail(new NetworkError('result dropped halfway (fault injection)'))
  }

  async renew (leaseId: string): Promise<boolean> {
    const { header } = await this.request({ type: 'renew', leaseId })
    return header.type === 'renewed' && header.ok
  }

  async release (leaseId: string): Promise<void> {
    await this.request({ type: 'release', leaseId })
  }

  async close (): Promise<void> {
    await this.channel.close()
    this.fail(new NetworkError('session closed'))
  }
}
