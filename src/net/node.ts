import { createHash } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { preSharedKey } from '@libp2p/pnet'
import { identify } from '@libp2p/identify'
import { agentVersion } from './agent.ts'
import type { PrivateKey, PubSub } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p, type Libp2pInit } from 'libp2p'
import { DEFAULT_DIAL_TIMEOUT_MS, DEFAULT_HEARTBEAT_MS, MAX_INCOMING_PENDING_CONNECTIONS } from '../common/defaults.ts'
import { NetworkError } from '../common/errors.ts'
import { noiseCrypto } from './noise-crypto.ts'
import { MAX_GOSSIP_BYTES, TOPICS } from '../protocol/constants.ts'
import type { GossipsubEvents } from '@chainsafe/libp2p-gossipsub'

export type SwarmNode = Libp2p<{ pubsub: PubSub<GossipsubEvents>, identify: ReturnType<ReturnType<typeof identify>> }>

export interface NodeOptions {
  privateKey?: PrivateKey
  listen: string[]
  /** gossipsub heartbeat; tests use 50-100 ms so the mesh forms quickly. */
  heartbeatMs?: number
  dialTimeoutMs?: number
  /** Who may connect (libp2p's gater; the simulator's partitions use one). */
  connectionGater?: Libp2pInit['connectionGater']
  /** A private swarm: only peers with the same pre-shared key can connect. */
  swarmKey?: Uint8Array
  /** The addresses others should dial (a VM behind NAT): said instead of the listening ones. */
  announce?: string[]
}


/**
 * Yamux frames of up to 1 MiB rather than 64 KiB: a tile's pixels are a few
 * MiB, and every frame costs a header, a write and a read; the window allows
 * a few frames in flight.
 */
const MUXER = { maxMessageSize: 1024 * 1024, initialStreamWindowSize: 4 * 1024 * 1024, maxStreamWindowSize: 16 * 1024 * 1024 }

/**
 * One libp2p node: tcp, noise, yamux, identify and gossipsub
 * (StrictSign, our topics only). Loopback is exempt from the per-host
 * inbound rate limit so many peers on one machine can connect.
 */
export async function createSwarmNode (options: NodeOptions): Promise<SwarmNode> {
  try {
    return await createNode(options)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const said = `${e.message} ${String((e as { cause?: unknown }).cause)}`
    // The socket error names the one address that failed, as host:port.
    const which = /(?:EADDRINUSE|EADDRNOTAVAIL|EACCES)[^\n]*?(\S+:\d+)/.exec(said)?.[1] ?? options.listen.join(', ')
    if (/EADDRINUSE|address already in use/i.test(said)) {
      throw new NetworkError(`cannot listen on ${which}: the address is in use (another peer on this port?); give --listen another port, or /tcp/0 for any free one`)
    }
    if (/EADDRNOTAVAIL/.test(said)) throw new NetworkError(`cannot listen on ${which}: no such address on this machine`)
    if (/EACCES/.test(said)) throw new NetworkError(`cannot listen on ${which}: permission denied (ports below 1024 need privileges)`)
    if (e.name === 'UnsupportedListenAddressesError') throw new NetworkError(`cannot listen on ${options.listen.join(', ')}: give TCP addresses, like /ip4/0.0.0.0/tcp/4001`)
    throw err
  }
}

async function createNode (options: NodeOptions): Promise<SwarmNode> {
  // Loaded here: a submit client, which has no gossip, starts without it.
  const { gossipsub } = await import('@chainsafe/libp2p-gossipsub')
  const { createTopicScoreParams } = await import('@chainsafe/libp2p-gossipsub/score')
  // Scored on one thing only: messages our validator rejects (malformed, unsigned, speaking for another peer).
  // Each costs (their count squared) x 10, so the third puts the sender below the graylist (-80): its messages are
  // then dropped unread. The count decays 1% a second. Mesh delivery scores stay off: our topics are quiet by design.
  const topicScore = createTopicScoreParams({
    topicWeight: 1,
    timeInMeshWeight: 0,
    firstMessageDeliveriesWeight: 0,
    meshMessageDeliveriesWeight: 0,
    meshFailurePenaltyWeight: 0,
    invalidMessageDeliveriesWeight: -10,
    invalidMessageDeliveriesDecay: 0.99,
  })
  return await createLibp2p({
    ...(options.privateKey !== undefined ? { privateKey: options.privateKey } : {}),
    // Every version reads identify: a peer of another one can say which this is.
    nodeInfo: { userAgent: agentVersion() },
    addresses: { listen: options.listen, ...(options.announce !== undefined && options.announce.length > 0 ? { announce: options.announce } : {}) },
    transports: [tcp()],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux(MUXER)],
    ...(options.connectionGater !== undefined ? { connectionGater: options.connectionGater } : {}),
    ...(options.swarmKey !== undefined ? { connectionProtector: preSharedKey({ psk: options.swarmKey }) } : {}),
    connectionManager: {
      allow: ['/ip4/127.0.0.1', '/ip6/::1'],
      dialTimeout: options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
      maxIncomingPendingConnections: MAX_INCOMING_PENDING_CONNECTIONS,
    },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictSign',
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        allowedTopics: TOPICS,
        heartbeatInterval: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
        // A message arrives once from each mesh peer; without this every copy is signature-checked, which cost each of 16 peers more CPU than its work.
        fastMsgIdFn: gossipCopyId,
        maxInboundDataLength: MAX_GOSSIP_BYTES * 4,
        doPX: true,
        // One owner's peers often share an address (one host, or NAT); the
        // colocation penalty would graylist all but ten of them.
        scoreParams: { IPColocationFactorWeight: 0, topics: Object.fromEntries(TOPICS.map(topic => [topic, topicScore])) },
      }),
    },
  }) as unknown as SwarmNode
}

/**
 * The same bytes again: a copy of a message already checked. Every field
 * counts (a forged copy differs somewhere and is checked on its own), each
 * length-prefixed so no two messages run together alike.
 */
export function gossipCopyId (msg: { from?: Uint8Array, seqno?: Uint8Array, topic: string, data?: Uint8Array, signature?: Uint8Array, key?: Uint8Array }): string {
  const hash = createHash('sha256')
  for (const part of [msg.from, msg.seqno, Buffer.from(msg.topic), msg.data, msg.signature, msg.key]) {
    const length = Buffer.alloc(4)
    length.writeUInt32BE(part?.length ?? 0)
    hash.update(length)
    if (part !== undefined) hash.update(part)
  }
  return hash.digest('base64')
}

/** A submit client: dials out only, no gossip, no listening. */
export async function createClientNode (options: { dialTimeoutMs?: number, swarmKey?: Uint8Array, privateKey?: PrivateKey } = {}): Promise<Libp2p> {
  return await createLibp2p({
    ...(options.privateKey !== undefined ? { privateKey: options.privateKey } : {}),
    ...(options.swarmKey !== undefined ? { connectionProtector: preSharedKey({ psk: options.swarmKey }) } : {}),
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux(MUXER)],
    connectionManager: { dialTimeout: options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS },
    // A peer that refuses our protocol is asked what it runs (agent.ts: versionRefusal).
    nodeInfo: { userAgent: agentVersion() },
    services: { identify: identify() },
  })
}
