import type { PrivateKey } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { InvalidParameterError, JobFailedError, NetworkError, ProtocolError, oneLine } from '../errors.ts'
import { toSpecs } from '../imaging/index.ts'
import { createClientNode, DEFAULT_DIAL_TIMEOUT_MS } from '../net/node.ts'
import { DEFAULT_MAX_UPLOAD_BYTES, SUBMIT_PROTOCOL } from '../protocol/constants.ts'
import { FramedChannel, type Channel } from '../protocol/framing.ts'
import { SubmitServerMessage } from '../protocol/messages.ts'
import { checkWritable, readInput, writeAtomically } from './files.ts'
import type { SubmitRequest } from './options.ts'

export type SubmitEvent =
  | { event: 'connected', peer: string, client: string }
  | { event: 'uploaded', bytes: number }
  | { event: 'accepted', jobId: string, width: number, height: number, tiles: number, tileSize: number, halo: number, notes: string[] }
  | { event: 'progress', done: number, total: number, workers: number }
  | { event: 'done', output: string, bytes: number, width: number, height: number, ms: number, tilesByPeer: Record<string, number>, leases: { granted: number, expired: number, released: number, duplicates: number } }

export interface SwarmSubmitOptions {
  peer: string
  tileSize?: number
  dialTimeoutMs?: number
  /** Silence from the coordinator for this long fails the job (it sends progress every 5 s). */
  idleTimeoutMs?: number
  maxUploadBytes?: number
  onEvent?: (event: SubmitEvent) => void
  /** The private swarm's pre-shared key. */
  swarmKey?: Uint8Array
  /** A kept identity, so peers with --allow-submit can know this client. */
  privateKey?: PrivateKey
}

export function parsePeerAddress (text: string): Multiaddr {
  try {
    return multiaddr(text)
  } catch {
    throw new InvalidParameterError(`Expected a multiaddr for --peer, like /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo..., but received '${text}'`)
  }
}

/** Sends a job to any peer, follows its progress, writes the result. */
export async function submitToSwarm (request: SubmitRequest, options: SwarmSubmitOptions): Promise<Extract<SubmitEvent, { event: 'done' }>> {
  const started = performance.now()
  const emit = options.onEvent ?? (() => {})
  const address = parsePeerAddress(options.peer)
  await checkWritable(request.output)
  const bytes = await readInput(request.input, options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES)
  const dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  const node = await createClientNode({ dialTimeoutMs, swarmKey: options.swarmKey, privateKey: options.privateKey })
  try {
    let channel: Channel
    try {
      const stream = await node.dialProtocol(address, SUBMIT_PROTOCOL, { signal: AbortSignal.timeout(dialTimeoutMs) })
      channel = new FramedChannel(stream, { maxBodyBytes: 4 * 1024 * 1024 * 1024 })
    } catch (err) {
      const e = err as Error
      const keyHint = options.swarmKey === undefined ? 'if the swarm is private, pass its --swarm-key' : 'check that --swarm-key is the swarm\'s key'
      const reason = e.name === 'TimeoutError' || /abort/i.test(e.message)
        ? `no answer within ${dialTimeoutMs / 1000} s (is a peer listening there? ${keyHint}: a key mismatch looks like this)`
        // Refused or unroutable: nothing answered. Anything else broke after TCP connected:
        // a pre-shared key mismatch garbles the handshake, and libp2p reports whatever broke first.
        : /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL|ENOTFOUND|no valid addresses|refused/i.test(e.message) || /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH/.test(String((e as { code?: unknown }).code))
          ? oneLine(e.message)
          : `the connection failed in its handshake (${oneLine(e.message)}): ${keyHint}`
      throw new NetworkError(`cannot reach ${options.peer}: ${reason}`)
    }
    emit({ event: 'connected', peer: options.peer, client: node.peerId.toString() })
    await channel.send({ type: 'submit', v: 1, ops: toSpecs(request.steps), format: request.format, quality: request.quality, ...(options.tileSize !== undefined ? { tileSize: options.tileSize } : {}) }, bytes)
    emit({ event: 'uploaded', bytes: bytes.length })
    const idleTimeoutMs = options.idleTimeoutMs ?? 60_000
    for (;;) {
      const { header, body } = await channel.receive({ timeoutMs: idleTimeoutMs }).catch((err: Error) => {
        throw new NetworkError(`lost the coordinator at ${options.peer}: ${oneLine(err.message)}`)
      })
      const parsed = SubmitServerMessage.safeParse(header)
      if (!parsed.success) throw new ProtocolError(`malformed message from the coordinator: ${parsed.error.issues[0]?.message ?? 'invalid'}`)
      const msg = parsed.data
      switch (msg.type) {
        case 'accepted':
          emit({ event: 'accepted', jobId: msg.jobId, width: msg.width, height: msg.height, tiles: msg.tiles, tileSize: msg.tileSize, halo: msg.halo, notes: msg.notes })
          break
        case 'progress':
          emit({ event: 'progress', done: msg.done, total: msg.total, workers: msg.workers })
          break
        case 'error':
          throw new JobFailedError(msg.message)
        case 'result': {
          if (body === undefined || body.length === 0) throw new ProtocolError('the coordinator sent an empty result')
          await writeAtomically(request.output, body)
          await channel.close()
          const done = { event: 'done' as const, output: request.output, bytes: body.length, width: msg.width, height: msg.height, ms: performance.now() - started, tilesByPeer: msg.tilesByPeer, leases: msg.leases }
          emit(done)
          return done
        }
      }
    }
  } finally {
    await node.stop()
  }
}
