import type { PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { DEFAULT_DIAL_TIMEOUT_MS, DEFAULT_MAX_UPLOAD_BYTES, SUBMIT_IDLE_MS } from '../defaults.ts'
import { JobFailedError, NetworkError, ProtocolError, oneLine } from '../errors.ts'
import { toSpecs } from '../imaging/index.ts'
import { parsePeerAddress } from '../net/address.ts'
import { openStream } from '../net/dial.ts'
import { createClientNode } from '../net/node.ts'
import { probe } from '../net/probe.ts'
import { PROTOCOL_VERSION, SUBMIT_PROTOCOL } from '../protocol/constants.ts'
import { FramedChannel } from '../protocol/framing.ts'
import { submitClientWire } from '../protocol/wire.ts'
import { OutputFile, readInput } from './files.ts'
import type { JobRequest } from './options.ts'

export type SubmitEvent =
  | { event: 'connected', peer: string, client: string }
  | { event: 'note', message: string }
  | { event: 'uploaded', bytes: number }
  | { event: 'accepted', jobId: string, width: number, height: number, tiles: number, tileSize: number, halo: number, notes: string[] }
  | { event: 'progress', done: number, total: number, workers: number }
  /** Every tile is in; the coordinator encodes the result. */
  | { event: 'encoding' }
  | { event: 'receiving', received: number, total: number }
  | { event: 'done', output: string, bytes: number, width: number, height: number, ms: number, tilesByPeer: Record<string, number>, leases: { granted: number, expired: number, released: number, duplicates: number } }

export type SubmitDone = Extract<SubmitEvent, { event: 'done' }>

export interface SwarmSubmitOptions {
  peer: string
  tileSize?: number
  dialTimeoutMs?: number
  /** Silence from the coordinator for this long fails the job (it reports at least every 5 s). */
  idleTimeoutMs?: number
  maxUploadBytes?: number
  onEvent?: (event: SubmitEvent) => void
  /** The private swarm's pre-shared key. */
  swarmKey?: Uint8Array
  /** A kept identity, so peers with --allow-submit can know this client. */
  privateKey?: PrivateKey
}

/** Why a dial failed, in words a user can act on: a plain look at the address says what is there. */
async function explainDialFailure (address: Multiaddr, err: Error, options: { swarmKey?: Uint8Array, dialTimeoutMs: number }): Promise<string> {
  if (err.name === 'WrongPeerError') return err.message
  const keyHint = options.swarmKey === undefined ? 'the swarm is private: pass its --swarm-key' : 'check that --swarm-key is the swarm\'s key'
  const seen = await probe(address, Math.min(2000, options.dialTimeoutMs))
  switch (seen.kind) {
    case 'unreachable': return `nothing answers there (${seen.code})`
    case 'private-swarm': return `a private swarm's peer answers there, and the handshake failed: ${keyHint}`
    case 'libp2p': return options.swarmKey === undefined
      ? `a libp2p peer answers there, but the connection failed: ${oneLine(err.message)}`
      : 'the peer there runs an open swarm: drop --swarm-key'
    case 'other': return `something other than a tileswarm peer answers there (it said '${seen.said}')`
    case 'silent': return err.name === 'TimeoutError' || /abort/i.test(err.message)
      ? `no answer within ${options.dialTimeoutMs / 1000} s: something accepts connections there but does not speak (${keyHint}, or check the address)`
      : `something accepts connections there but does not speak libp2p (${oneLine(err.message)})`
  }
}

/** Sends a job to any peer, follows its progress, writes the result. */
export async function submitToSwarm (request: JobRequest, options: SwarmSubmitOptions): Promise<SubmitDone> {
  const started = performance.now()
  const emit = options.onEvent ?? (() => {})
  const address = parsePeerAddress(options.peer, '--peer')
  const output = await OutputFile.create(request.output)
  const dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  const node = await createClientNode({ dialTimeoutMs, swarmKey: options.swarmKey, privateKey: options.privateKey })
  try {
    const bytes = await readInput(request.input, options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES)
    if (address.getPeerId() === null) emit({ event: 'note', message: `--peer ${options.peer} has no /p2p/ peer id: the image goes to whichever peer answers there (add /p2p/<id> to have it checked)` })
    let stream
    try {
      stream = await openStream(node, address, SUBMIT_PROTOCOL, { signal: AbortSignal.timeout(dialTimeoutMs) })
    } catch (err) {
      throw new NetworkError(`cannot reach ${options.peer}: ${await explainDialFailure(address, err as Error, { swarmKey: options.swarmKey, dialTimeoutMs })}`)
    }
    const wire = submitClientWire(new FramedChannel(stream, { maxBodyBytes: 4 * 1024 * 1024 * 1024 }))
    emit({ event: 'connected', peer: options.peer, client: node.peerId.toString() })
    const idleTimeoutMs = options.idleTimeoutMs ?? SUBMIT_IDLE_MS
    let lastReceiving = 0
    const receive = async (): ReturnType<typeof wire.receive> => await wire.receive({
      timeoutMs: idleTimeoutMs,
      onBody: (received, total) => {
        if (received === total || performance.now() - lastReceiving > 200) {
          lastReceiving = performance.now()
          emit({ event: 'receiving', received, total })
        }
      },
    }).catch((err: Error) => {
      if (err instanceof ProtocolError) throw err
      throw new NetworkError(`lost the coordinator at ${options.peer} before the result (${oneLine(err.message)}): the job is lost; submit it again`)
    })
    await wire.send({ type: 'submit', v: PROTOCOL_VERSION, ops: toSpecs(request.steps), format: request.format, quality: request.quality, bytes: bytes.length, ...(options.tileSize !== undefined ? { tileSize: options.tileSize } : {}) })
    // The peer admits the job, or refuses it, before the image is sent.
    const admission = (await receive()).message
    if (admission.type === 'error') throw new JobFailedError(admission.message)
    if (admission.type !== 'ready') throw new ProtocolError(`expected the peer to admit the job, got ${admission.type}`)
    await wire.send({ type: 'upload' }, bytes)
    emit({ event: 'uploaded', bytes: bytes.length })
    for (;;) {
      const { message: msg, body } = await receive()
      switch (msg.type) {
        case 'accepted':
          emit({ event: 'accepted', jobId: msg.jobId, width: msg.width, height: msg.height, tiles: msg.tiles, tileSize: msg.tileSize, halo: msg.halo, notes: msg.notes })
          break
        case 'progress':
          if (msg.phase === 'tiles') emit({ event: 'progress', done: msg.done, total: msg.total, workers: msg.workers })
          else if (msg.phase === 'encoding') emit({ event: 'encoding' })
          break
        case 'ready':
          throw new ProtocolError('the coordinator admitted the job twice')
        case 'error':
          throw new JobFailedError(msg.message)
        case 'result': {
          if (body === undefined || body.length === 0) throw new ProtocolError('the coordinator sent an empty result')
          await output.commit(body)
          await wire.channel.close().catch(() => {})
          const done = { event: 'done' as const, output: request.output, bytes: body.length, width: msg.width, height: msg.height, ms: performance.now() - started, tilesByPeer: msg.tilesByPeer, leases: msg.leases }
          emit(done)
          return done
        }
      }
    }
  } finally {
    await output.discard()
    await node.stop()
  }
}
