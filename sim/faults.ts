import { NetworkError } from '../src/common/errors.ts'
import { FramedChannel, type Channel, type Duplex, type Message, type ReceiveOptions } from '../src/protocol/framing.ts'
import type { ChannelUse, OpenChannel } from '../src/swarm/channels.ts'

/** Tile and submit traffic the peers sent, counted where the simulator wraps their channels. */
export const wireTraffic = { messages: 0, bytes: 0 }

const never = new Promise<never>(() => {})

/**
 * Faults for one peer, injected from outside: the peer opens its channels
 * through `openChannel`, which wraps each framed channel. A frozen peer holds
 * its connections and says nothing; a crashed one loses every channel at once;
 * a flaky one drops some result streams halfway through their bodies.
 */
export class PeerFaults {
  frozen = false
  crashed = false
  /** Chance that a result stream is cut halfway. */
  flakiness = 0
  /** Tiles' pixels this peer grants as a coordinator arrive with a byte changed. */
  corruptsGrants = false
  private readonly random: () => number
  private readonly open = new Set<FaultyChannel>()

  constructor (random: () => number) {
    this.random = random
  }

  readonly openChannel: OpenChannel = (stream, limits, use) => {
    const cutter = cuttable(stream)
    const channel = new FaultyChannel(new FramedChannel(cutter.duplex, limits), this, use, cutter.cutAfter)
    if (this.crashed) channel.inner.abort(new NetworkError('crashed (fault injection)'))
    else this.open.add(channel)
    return channel
  }

  forget (channel: FaultyChannel): void {
    this.open.delete(channel)
  }

  /** Only flaky peers draw from the PRNG, so a seed replays the same drops. */
  dropThisResult (): boolean {
    return this.flakiness > 0 && this.random() < this.flakiness
  }

  freeze (): void {
    this.frozen = true
  }

  /** Every channel is cut now, and any opened later. */
  crash (): void {
    this.crashed = true
    for (const channel of this.open) channel.inner.abort(new NetworkError('crashed (fault injection)'))
    this.open.clear()
  }
}

/** A stream whose writes stop, and which is aborted, after a byte budget set later. */
function cuttable (stream: Duplex): { duplex: Duplex, cutAfter: (bytes: number, onCut: () => void) => void } {
  let budget = Infinity
  let onCut = (): void => {}
  return {
    duplex: {
      source: stream.source,
      sink: async source => {
        await stream.sink((async function * () {
          for await (const chunk of source) {
            if (chunk.byteLength > budget) {
              if (budget > 0) yield chunk.subarray(0, budget)
              onCut()
              return
            }
            budget -= chunk.byteLength
            yield chunk
          }
        })())
      },
      abort: err => { stream.abort?.(err) },
      close: async () => { await stream.close?.() },
    },
    cutAfter: (bytes, cut) => { budget = bytes; onCut = cut },
  }
}

class FaultyChannel implements Channel {
  readonly inner: FramedChannel
  private readonly faults: PeerFaults
  private readonly use: ChannelUse
  private readonly cutAfter: (bytes: number, onCut: () => void) => void

  constructor (inner: FramedChannel, faults: PeerFaults, use: ChannelUse, cutAfter: (bytes: number, onCut: () => void) => void) {
    this.inner = inner
    this.faults = faults
    this.use = use
    this.cutAfter = cutAfter
  }

  get isClosed (): boolean { return this.inner.isClosed }

  async send (header: Record<string, unknown>, body?: Uint8Array): Promise<void> {
    // A frozen peer's writes go nowhere; its connections stay open.
    if (this.faults.frozen) return
    wireTraffic.messages++
    wireTraffic.bytes += JSON.stringify(header).length + (body?.length ?? 0)
    if (this.use === 'tile-server' && header.type === 'grant' && body !== undefined && body.length > 0 && this.faults.corruptsGrants) {
      // A byte of the pixels (the body's end), past any contexts.
      const corrupt = Buffer.from(body)
      corrupt[corrupt.length - 1 - ((header.pixels as { bytes: number }).bytes >> 1)]! ^= 0xff
      return await this.inner.send(header, corrupt)
    }
    if (this.use === 'tile-client' && header.type === 'result' && body !== undefined && this.faults.dropThisResult()) {
      const cut = new Promise<never>((_resolve, reject) => {
        this.cutAfter(Math.floor(body.length / 2), () => {
          const err = new NetworkError('result stream dropped halfway (fault injection)')
          this.inner.abort(err)
          reject(err)
        })
      })
      await Promise.race([this.inner.send(header, body), cut])
      // The cut lands as the bytes flow: the send may return first.
      await cut
    }
    await this.inner.send(header, body)
  }

  async receive (options: ReceiveOptions): Promise<Message> {
    if (this.faults.frozen) return await never
    const message = await this.inner.receive(options)
    // Whatever arrives after a freeze is never read.
    if (this.faults.frozen) return await never
    return message
  }

  async close (): Promise<void> {
    if (this.faults.frozen) return
    this.faults.forget(this)
    await this.inner.close()
  }

  abort (err: Error): void {
    if (this.faults.frozen) return
    this.faults.forget(this)
    this.inner.abort(err)
  }
}
