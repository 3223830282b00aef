import * as lp from 'it-length-prefixed'
import { pipe } from 'it-pipe'
import { pushable } from 'it-pushable'
import { Uint8ArrayList } from 'uint8arraylist'
import { LimitExceededError, NetworkError, ProtocolError } from '../common/errors.ts'
import { BODY_CHUNK_BYTES, DRAIN_IDLE_MS, MAX_FRAME_BYTES, MAX_HEADER_BYTES } from './constants.ts'

/**
 * The one framing helper. A message is a JSON header frame, then, when the
 * header says `bodyBytes: N`, N bytes of body in frames of at most 1 MiB.
 * Frame kind is its first byte: H (header) or B (body).
 */
const HEADER = 0x48
const BODY = 0x42
const BODY_KIND = Uint8Array.of(BODY)

export interface Message {
  header: Record<string, unknown>
  body?: Buffer
}

export interface ChannelLimits {
  /** Largest body accepted from the remote. */
  maxBodyBytes: number
  /** close() gives up when the remote has taken nothing for this long (default DRAIN_IDLE_MS). */
  drainIdleMs?: number
}

/** The part of a libp2p Stream the channel needs; tests pass in-memory pairs. */
export interface Duplex {
  source: AsyncIterable<Uint8ArrayList | Uint8Array>
  sink: (source: AsyncIterable<Uint8Array | Uint8ArrayList>) => Promise<void>
  abort?: (err: Error) => void
  close?: () => Promise<void>
}

/** A wait is bounded: by a timeout, or by a signal its owner aborts when it is no longer wanted. */
export type ReceiveOptions = ({ timeoutMs: number, signal?: AbortSignal } | { timeoutMs?: undefined, signal: AbortSignal }) & {
  /** Called as a large body arrives: bytes so far and in all. */
  onBody?: (received: number, total: number) => void
}

/** A message stream: framed over a libp2p stream, or in memory within a peer. */
export interface Channel {
  /** Queues a message; resolves once the transport has taken it (backpressure). */
  send: (header: Record<string, unknown>, body?: Uint8Array) => Promise<void>
  /** Reads one whole message; the header is parsed, not validated. */
  receive: (options: ReceiveOptions) => Promise<Message>
  /** Ends our side cleanly; the remote sees the end of the stream. */
  close: () => Promise<void>
  abort: (err: Error) => void
  readonly isClosed: boolean
}

function headerJson (header: Record<string, unknown>, body: Uint8Array | undefined): Buffer {
  const json = Buffer.from(JSON.stringify(body === undefined ? header : { ...header, bodyBytes: body.length }))
  if (json.length > MAX_HEADER_BYTES) throw new ProtocolError(`header of ${json.length} bytes is over ${MAX_HEADER_BYTES}`)
  return json
}

/** Rejects after `timeoutMs`, or when `signal` aborts; `clear` undoes both. */
function bounded (options: ReceiveOptions): { promise: Promise<never>, clear: () => void } {
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  const promise = new Promise<never>((_resolve, reject) => {
    if (options.timeoutMs !== undefined) timer = setTimeout(() => { reject(new NetworkError(`no answer within ${options.timeoutMs} ms`)) }, options.timeoutMs)
    if (options.signal !== undefined) {
      onAbort = () => { reject(new NetworkError('aborted')) }
      if (options.signal.aborted) onAbort()
      else options.signal.addEventListener('abort', onAbort, { once: true })
    }
  })
  promise.catch(() => {})
  return {
    promise,
    clear: () => {
      clearTimeout(timer)
      if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort)
    },
  }
}

/**
 * Length-prefixes each frame as one list: the muxer then sends prefix, kind
 * and bytes in one data frame, where lp.encode's separate pieces cost a
 * muxer frame and an encryption each.
 */
async function * framesOneEach (source: AsyncIterable<Uint8Array | Uint8ArrayList>, onTaken: () => void): AsyncGenerator<Uint8ArrayList> {
  for await (const frame of source) {
    yield lp.encode.single(frame)
    onTaken()
  }
}

export class FramedChannel implements Channel {
  private readonly outgoing = pushable<Uint8Array | Uint8ArrayList>()
  private readonly frames: AsyncIterator<Uint8ArrayList>
  /** Settles when the transport stops taking frames: undefined when it took them all, the error if it failed. */
  private readonly sinkDone: Promise<Error | undefined>
  /** Aborted once nothing more will drain (the sink ended or failed, or the channel was aborted): no send waits on it then. */
  private readonly draining = new AbortController()
  /** No new sends: close() or abort() was called. */
  private closed = false
  private aborted = false
  private readonly duplex: Duplex
  private readonly limits: ChannelLimits
  /** When the transport last took a frame: close() waits while it keeps taking them. */
  private takenAt = performance.now()

  constructor (duplex: Duplex, limits: ChannelLimits) {
    this.duplex = duplex
    this.limits = limits
    this.sinkDone = pipe(this.outgoing, src => framesOneEach(src, () => { this.takenAt = performance.now() }), duplex.sink)
      .then(() => undefined, (err: Error) => err)
      .finally(() => { this.draining.abort() })
    this.frames = pipe(duplex.source, src => lp.decode(src, { maxDataLength: MAX_FRAME_BYTES }))[Symbol.asyncIterator]()
  }

  /** One message at a time: a message sent while a large body is under way must not land inside it. */
  private sendQueue: Promise<void> = Promise.resolve()

  async send (header: Record<string, unknown>, body?: Uint8Array): Promise<void> {
    if (this.closed) throw new NetworkError('stream is closed')
    const json = headerJson(header, body)
    const previous = this.sendQueue
    let sent!: () => void
    this.sendQueue = new Promise(resolve => { sent = resolve })
    try {
      await previous
      if (this.aborted || this.draining.signal.aborted) throw new NetworkError('stream is closed')
      this.outgoing.push(Buffer.concat([Buffer.from([HEADER]), json]))
      if (body !== undefined) {
        for (let at = 0; at < body.length; at += BODY_CHUNK_BYTES) {
          const chunk = body.subarray(at, Math.min(body.length, at + BODY_CHUNK_BYTES))
          // A list, not a concatenation: the length prefix joins them in the one copy it makes anyway.
          this.outgoing.push(new Uint8ArrayList(BODY_KIND, chunk))
          // Keep at most a few MiB queued (readableLength counts bytes): a 500 MB upload must not double
          // in memory, and a send returns when the transport has the bytes, not before. Without a
          // signal this it-pushable's onEmpty() returns at once.
          if (this.outgoing.readableLength > 4 * BODY_CHUNK_BYTES) await this.outgoing.onEmpty({ signal: this.draining.signal }).catch(() => {})
          if (this.aborted || this.draining.signal.aborted) throw new NetworkError('stream is closed')
        }
      }
    } finally {
      sent()
    }
  }

  private async nextFrame (options: ReceiveOptions): Promise<Uint8ArrayList> {
    const limit = bounded(options)
    try {
      const next = await Promise.race([this.frames.next(), limit.promise])
      if (next.done === true) throw new NetworkError('the remote closed the stream')
      return next.value
    } catch (err) {
      // A frame read we gave up on would arrive out of order later: the channel is done.
      this.abort(err instanceof Error ? err : new Error(String(err)))
      if (err instanceof NetworkError || err instanceof ProtocolError || err instanceof LimitExceededError) throw err
      throw new NetworkError(`stream failed: ${(err as Error).message}`)
    } finally {
      limit.clear()
    }
  }

  /** On a bad or oversized message the caller answers and closes. */
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
      if (filled + chunk.length - 1 > n) throw new ProtocolError('body is longer than announced')
      // Part by part: subarray() on a frame that spans reads would copy it once more.
      for (const part of chunk.sublist(1)) {
        body.set(part, filled)
        filled += part.length
      }
      options.onBody?.(filled, n)
    }
    return { header: h, body }
  }

  /**
   * Ends our side once every queued byte is delivered, however long a large
   * result takes, as long as the remote keeps reading; closing the stream
   * under the write would cut the message short.
   */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    // Messages already being sent go out whole first.
    await this.sendQueue
    this.outgoing.end()
    this.takenAt = performance.now()
    const idleMs = this.limits.drainIdleMs ?? DRAIN_IDLE_MS
    let watchdog: NodeJS.Timeout | undefined
    const stalled = new Promise<Error>(resolve => {
      watchdog = setInterval(() => {
        if (performance.now() - this.takenAt > idleMs) resolve(new NetworkError(`the remote took nothing for ${idleMs / 1000} s; gave up delivering`))
      }, Math.min(1000, idleMs / 4))
      watchdog.unref()
    })
    try {
      // An abort meanwhile (the remote went, or our own reader gave up) ends the wait: nothing more will be taken.
      const aborted = new Promise<Error>(resolve => {
        const gone = (): void => { if (this.aborted) resolve(new NetworkError('the stream was aborted before its bytes were delivered')) }
        if (this.draining.signal.aborted) gone()
        else this.draining.signal.addEventListener('abort', gone, { once: true })
      })
      const err = await Promise.race([this.sinkDone, stalled, aborted])
      if (err !== undefined) {
        this.duplex.abort?.(err)
        throw err instanceof NetworkError ? err : new NetworkError(`delivery failed: ${err.message}`)
      }
    } finally {
      clearInterval(watchdog)
    }
    await this.duplex.close?.().catch(() => {})
  }

  abort (err: Error): void {
    if (this.aborted) return
    this.aborted = true
    this.closed = true
    this.draining.abort()
    this.outgoing.end(err)
    this.duplex.abort?.(err)
  }

  get isClosed (): boolean {
    return this.closed
  }
}

/** Two connected in-memory duplexes, for the coordinator's own worker and for tests. */
export function duplexPair (): [Duplex, Duplex] {
  const aToB = pushable<Uint8Array | Uint8ArrayList>()
  const bToA = pushable<Uint8Array | Uint8ArrayList>()
  const side = (input: ReturnType<typeof pushable<Uint8Array | Uint8ArrayList>>, output: ReturnType<typeof pushable<Uint8Array | Uint8ArrayList>>): Duplex => ({
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

/**
 * A connected pair of channels within one process: the coordinator's own
 * worker. Messages are handed over, not framed: the body is passed by
 * reference (the sender must not change it afterwards) and the header goes
 * through JSON, so the receiver sees exactly what the network would give it.
 */
export function memoryChannelPair (): [Channel, Channel] {
  const a = new MemoryChannel()
  const b = new MemoryChannel()
  a.remote = b
  b.remote = a
  return [a, b]
}

class MemoryChannel implements Channel {
  remote!: MemoryChannel
  private readonly inbox: Message[] = []
  private reader: { resolve: (m: Message) => void, reject: (e: Error) => void } | undefined
  /** Why nothing more will arrive: the remote closed, or either side aborted. */
  private ended: Error | undefined
  private closed = false

  get isClosed (): boolean { return this.closed }

  async send (header: Record<string, unknown>, body?: Uint8Array): Promise<void> {
    if (this.closed) throw new NetworkError('stream is closed')
    const parsed = JSON.parse(headerJson(header, body).toString('utf8')) as Record<string, unknown>
    const bytes = body === undefined || body.length === 0 ? undefined : Buffer.from(body.buffer, body.byteOffset, body.length)
    this.remote.deliver({ header: parsed, ...(bytes !== undefined ? { body: bytes } : {}) })
  }

  private deliver (message: Message): void {
    if (this.ended !== undefined) return
    const reader = this.reader
    this.reader = undefined
    if (reader !== undefined) reader.resolve(message)
    else this.inbox.push(message)
  }

  private end (reason: Error): void {
    this.ended ??= reason
    const reader = this.reader
    this.reader = undefined
    reader?.reject(this.ended)
  }

  async receive (options: ReceiveOptions): Promise<Message> {
    const queued = this.inbox.shift()
    if (queued !== undefined) return queued
    if (this.ended !== undefined) throw this.ended
    if (this.reader !== undefined) throw new Error('internal: one receive at a time')
    const limit = bounded(options)
    try {
      return await Promise.race([new Promise<Message>((resolve, reject) => { this.reader = { resolve, reject } }), limit.promise])
    } catch (err) {
      this.reader = undefined
      // A read given up on would take a later message out of order: the channel is done.
      this.abort(err as Error)
      throw err
    } finally {
      limit.clear()
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.remote.end(new NetworkError('the remote closed the stream'))
  }

  abort (err: Error): void {
    if (this.closed && this.ended !== undefined) return
    this.closed = true
    const reason = err instanceof NetworkError ? err : new NetworkError(`stream failed: ${err.message}`)
    this.remote.end(reason)
    this.end(reason)
  }

}
