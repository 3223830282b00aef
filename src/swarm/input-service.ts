import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { DEFAULT_DIAL_TIMEOUT_MS, INPUT_UPLOADS, WORKER_REQUEST_TIMEOUT_MS } from '../defaults.ts'
import { ProtocolError, TileswarmError, oneLine } from '../errors.ts'
import { semaphore } from '../imaging/index.ts'
import { openStream } from '../net/dial.ts'
import type { SwarmNode } from '../net/node.ts'
import { INPUT_PROTOCOL, MAX_HEADER_BYTES, PROTOCOL_VERSION } from '../protocol/constants.ts'
import { errorReply, inputClientWire, inputServerWire } from '../protocol/wire.ts'
import { checkedInput, inputTransferMs, sendInput, type InputStore } from '../worker/inputs.ts'
import type { OpenChannel } from './channels.ts'
import { shortId, type Log } from '../log.ts'

export interface InputServiceComponents {
  node: SwarmNode
  inputs: InputStore
  openChannel: OpenChannel
  log: Log
}

/**
 * The input protocol, both ends: a worker that has a job's input file passes
 * it on to others the coordinator sends its way (a few at a time), and this
 * peer's worker fetches from such peers, checking what it gets.
 */
export class InputService {
  private readonly c: InputServiceComponents
  private readonly maxInputBytes: number
  private readonly dialTimeoutMs: number
  /** Uploads take turns, a few at a time: a queue, not a refusal, so a worker sent here gets the file. */
  private readonly uploadTurn = semaphore(INPUT_UPLOADS)
  /** Inputs passed on from here. */
  served = 0

  constructor (components: InputServiceComponents, options: { maxInputBytes: number, dialTimeoutMs?: number }) {
    this.c = components
    this.maxInputBytes = options.maxInputBytes
    this.dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  }

  async start (): Promise<void> {
    await this.c.node.handle(INPUT_PROTOCOL, ({ stream, connection }) => { void this.serve(stream, connection.remotePeer.toString()) }, { maxInboundStreams: 16 })
  }

  async stop (): Promise<void> {
    await this.c.node.unhandle(INPUT_PROTOCOL).catch(() => {})
  }

  private async serve (stream: Stream, peer: string): Promise<void> {
    const wire = inputServerWire(this.c.openChannel(stream, { maxBodyBytes: 0 }, 'input-server'), peer)
    try {
      const { message } = await wire.receive({ timeoutMs: WORKER_REQUEST_TIMEOUT_MS })
      await this.uploadTurn(async () => {
        const file = await this.c.inputs.fileWhenHere(message.sha256)
        if (file === undefined) throw new ProtocolError(`input ${message.sha256.slice(0, 12)} is not here`)
        await sendInput(wire.channel, async () => { await wire.send({ type: 'file' }, file) }, file.length)
        await wire.channel.close()
        this.served++
      })
    } catch (err) {
      if (!(err instanceof TileswarmError)) this.c.log(`input for ${shortId(peer)} failed: ${oneLine((err as Error).message)}`, 'warn')
      await wire.send(errorReply(err)).catch(() => {})
      await wire.channel.close().catch(() => {})
    }
  }

  /** A job's input from a peer that has it, checked against its digest. */
  async fetch (source: { peerId: string, addrs: string[] }, input: { bytes: number, sha256: string }): Promise<Buffer> {
    const id = peerIdFromString(source.peerId)
    if (source.addrs.length > 0) await this.c.node.peerStore.merge(id, { multiaddrs: source.addrs.map(a => multiaddr(a)) })
    const stream = await openStream(this.c.node, id, INPUT_PROTOCOL, { signal: AbortSignal.timeout(this.dialTimeoutMs) })
    const wire = inputClientWire(this.c.openChannel(stream, { maxBodyBytes: Math.max(MAX_HEADER_BYTES, this.maxInputBytes) }, 'input-client'), `peer ${source.peerId}`)
    try {
      await wire.send({ type: 'fetch', v: PROTOCOL_VERSION, sha256: input.sha256 })
      const { message, body } = await wire.receive({ timeoutMs: inputTransferMs(input.bytes) })
      if (message.type === 'error') throw new ProtocolError(message.message)
      const file = checkedInput(body, input, `input ${input.sha256.slice(0, 12)}`)
      await wire.channel.close().catch(() => {})
      return file
    } catch (err) {
      wire.channel.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }
}
