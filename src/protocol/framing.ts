import * as lp from 'it-length-prefixed'
import { pipe } from 'it-pipe'
import { pushable } from 'it-pushable'
import { Uint8ArrayList } from 'uint8arraylist'
import { LimitExceededError, NetworkError, ProtocolError } from '../errors.ts'
import { BODY_CHUNK_BYTES, MAX_FRAME_BYTES, MAX_HEADER_BYTES } from './constants.ts'

/**
 * The one framing helper. A message is a JSON header frame, then, when the
 * header says `bodyBytes: N`, N bytes of body in frames of at most 1 MiB.
 * Frame kind is its first byte: H (header) or B (body).
 */
const HEADER = 0x48
const BODY = 0x42
const BODY_KIND = Uint8Array.of(BODY)

/** Tile and submit traffic, counted where it is framed (read by the simulator's summary). */
export const wireStats = { messages: 0, bytes: 0 }

export interface Message {
  header: Record<string, unknown>
  body?: Buffer
}

export interface ChannelLimits {
  /** Largest body accepted from the remote. */
  maxBodyBytes: number
}

/** The part of a libp2p Stream the channel needs; tests pass in-memory pairs. */
export interface Duplex {
  source: AsyncIterable<Uint8ArrayList | Uint8Array>
  sink: (source: AsyncIterable<Uint8Array>) => Promise<void>
  abort?: (err: Error) => void
  close?: () => Promise<void>
}

export interface ReceiveOptions {
  timeoutMs: number
  signal?: AbortSignal
}

export class Channel {
  private readonly outgoing = pushable<Uint8Array | Uint8ArrayList>()
  private readonly frames: AsyncIterator<Uint8ArrayList>
  private readonly sinkDone: Promise<void>
  private closed = false
  private readonly duplex: Duplex
  private readonly limits: ChannelLimits

  constructor (duplex: Duplex, limits: ChannelLimits) {
    this.duplex = duplex
    this.limits = limits
    this.sinkDone = pipe(this.outgoing, src => lp.encode(src), duplex.sink).catch(() => {})
    this.frames = pipe(duplex.source, src => lp.decode(src, { maxDataLength: MAX_FRAME_BYTES }))[Symbol.asyncIterator]()
  }

  /** Queues a message; resolves once the transport has taken it (backpressure). */
  async send (header: Record<string, unknown>, body?: Uint8Array): Promise<void> {
    if (this.closed) throw new NetworkError('stream is closed')
    const json = Buffer.from(JSON.stringify(body === undefined ? header : { ...header, bodyBytes: body.length }))
    if (json.length > MAX_HEADER_BYTES) throw new ProtocolError(`header of ${json.length} bytes is over ${MAX_HEADER_BYTES}`)
    this.outgoing.push(Buffer.concat([Buffer.from([HEADER]), json]))
    wireStats.messages++
    wireStats.bytes += json.length + 1 + (body?.length ?? 0)
    if (body !== undefined) {
      for (let at = 0; at < body.length; at += BODY_CHUNK_BYTES) {
        const chunk = body.subarray(at, Math.min(body.length, at + BODY_CHUNK_BYTES))
        // A list, not a concatenation: the length prefix joins them in the one copy it makes anyway.
        this.outgoing.push(new Uint8ArrayList(BODY_KIND, chunk))
        // Keep at most a few MiB queued: a 500 MB upload must not double in memory.
        if (this.outgoing.readableLength > 4) await this.outgoing.onEmpty()
      }
    }
  }

  private async nextFrame (options: ReceiveOptions): Promise<Uint8ArrayList> {
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    const bounded = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new NetworkError(`no answer within ${options.timeoutMs} ms`)) }, options.timeoutMs)
      if (options.signal !== undefined) {
        onAbort = () => { reject(new NetworkError('aborted')) }
        if (options.signal.aborted) onAbort()
        else options.signal.addEventListener('abort', onAbort, { once: true })
      }
    })
    try {
      const next = await Promise.race([this.frames.next(), bounded])
      if (next.done === true) throw new NetworkError('the remote closed the stream')
      return next.value
    } catch (err) {
      // A frame read we gave up on would arrive out of order later: the channel is done.
      this.abort(err instanceof Error ? err : new Error(String(err)))
      if (err instanceof NetworkError || err instanceof ProtocolError || err instanceof LimitExceededError) throw err
      throw new NetworkError(`stream failed: ${(err as Error).message}`)
    } finally {
      clearTimeout(timer)
      if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort)
    }
  }

  /**
   * Reads one whole message. The header is parsed but not validated: callers
   * validate. On a bad or oversized message the caller answers and closes.
   */
  async receive (options: ReceiveOptions): Promise<Message> {
    const frame = await this.nextFrame(options)
    if (frame.get(0) !== HEADER) throw new ProtocolError('expected a header frame')
    let header: unknown
    try {
      header = JSON.parse(Buffer.from(frame.subarray(1)).toString('utf8'))
    } catch {
      throw new ProtocolError('header is not valid JSON')
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new ProtocolError('header is not an object')
    const h = header as Record<string, unknown>
    if (h.bodyBytes === undefined || h.bodyBytes === 0) return { header: h }
    const n = h.bodyBytes
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new ProtocolError('bodyBytes is not a byte count')
    if (n > this.limits.maxBodyBytes) throw new LimitExceededError(`message body of ${n} bytes is over the limit of ${this.limits.maxBodyBytes}`)
    const body = Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      const chunk = await this.nextFrame(options)
      if (chunk.get(0) !== BODY) throw new ProtocolError('expected a body frame')
      const bytes = chunk.subarray(1)
      if (filled + bytes.length > n) throw new ProtocolError('body is longer than announced')
      body.set(bytes, filled)
      filled += bytes.length
    }
    return { header: h, body }
  }

  /** Ends our side cleanly; the remote sees the end of the stream. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.outgoing.end()
    await Promise.race([this.sinkDone, new Promise(resolve => setTimeout(resolve, 2000).unref())])
    await this.duplex.close?.().catch(() => {})
  }

  /**
   * Fault injection: sends a message's header and half its body, then cuts
   * the stream, as a peer that dies mid-transfer would.
   */
  async sendHalfThenAbort (header: Record<string, unknown>, body: Uint8Array): Promise<void> {
    const json = Buffer.from(JSON.stringify({ ...header, bodyBytes: body.length }))
    this.outgoing.push(Buffer.concat([Buffer.from([HEADER]), json]))
    this.outgoing.push(Buffer.concat([Buffer.from([BODY]), body.subarray(0, Math.floor(body.length / 2))]))
    await this.outgoing.onEmpty()
    this.abort(new Error('dropped halfway (fault injection)'))
  }

  abort (err: Error): void {
    if (this.closed) return
    this.closed = true
    this.outgoing.end(err)
    this.duplex.abort?.(err)
  }

  get isClosed (): boolean {
    return this.closed
  }
}

/** Two connected in-memory duplexes, for the coordinator's own worker and for tests. */
export function duplexPair (): [Duplex, Duplex] {
  const aToB = pushable<Uint8Array>()
  const bToA = pushable<Uint8Array>()
  const side = (input: ReturnType<typeof pushable<Uint8Array>>, output: ReturnType<typeof pushable<Uint8Array>>): Duplex => ({
    source: input,
    sink: async source => {
      try {
        for await (const chunk of source) output.push(chunk)
        output.end()
      } catch (err) {
        output.end(err as Error)
      }
    },
    abort: err => { output.end(err); input.end(err) },
    close: async () => { output.end() },
  })
  return [side(bToA, aToB), side(aToB, bToA)]
}
