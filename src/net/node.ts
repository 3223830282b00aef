import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { preSharedKey } from '@libp2p/pnet'
import { identify } from '@libp2p/identify'
import type { PrivateKey, PubSub } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p, type Libp2pInit } from 'libp2p'
import { MAX_GOSSIP_BYTES, TOPICS } from '../protocol/constants.ts'
import type { GossipsubEvents } from '@chainsafe/libp2p-gossipsub'

export type SwarmNode = Libp2p<{ pubsub: PubSub<GossipsubEvents>, identify: ReturnType<ReturnType<typeof identify>> }>

export interface NodeOptions {
  privateKey?: PrivateKey
  listen: string[]
  bootstrap: string[]
  /** gossipsub heartbeat; tests use 50-100 ms so the mesh forms quickly. */
  heartbeatMs?: number
  dialTimeoutMs?: number
  /** Peer ids this node will neither dial nor accept (the simulator's partitions). */
  blocked?: Set<string>
  /** A private swarm: only peers with the same pre-shared key can connect. */
  swarmKey?: Uint8Array
}

export const DEFAULT_DIAL_TIMEOUT_MS = 10_000

/**
 * One libp2p node: tcp, noise, yamux, identify, bootstrap and gossipsub
 * (StrictSign, our topics only). Loopback is exempt from the per-host
 * inbound rate limit so many peers on one machine can connect.
 */
export async function createSwarmNode (options: NodeOptions): Promise<SwarmNode> {
  return await createLibp2p({
    ...(options.privateKey !== undefined ? { privateKey: options.privateKey } : {}),
    addresses: { listen: options.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: options.bootstrap.length > 0 ? [bootstrap({ list: options.bootstrap })] : [],
    ...(options.blocked !== undefined ? { connectionGater: blockedGater(options.blocked) } : {}),
    ...(options.swarmKey !== undefined ? { connectionProtector: preSharedKey({ psk: options.swarmKey }) } : {}),
    connectionManager: {
      allow: ['/ip4/127.0.0.1', '/ip6/::1'],
      dialTimeout: options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
      maxIncomingPendingConnections: 64,
    },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictSign',
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        allowedTopics: TOPICS,
        heartbeatInterval: options.heartbeatMs ?? 1000,
        maxInboundDataLength: MAX_GOSSIP_BYTES * 4,
        doPX: true,
        // One owner's peers often share an address (one host, or NAT); the
        // colocation penalty would graylist all but ten of them.
        scoreParams: { IPColocationFactorWeight: 0 },
      }),
    },
  }) as unknown as SwarmNode
}

function blockedGater (blocked: Set<string>): NonNullable<Libp2pInit['connectionGater']> {
  const deny = (peer: { toString: () => string }): boolean => blocked.has(peer.toString())
  return {
    denyDialPeer: async peer => deny(peer),
    denyInboundEncryptedConnection: async peer => deny(peer),
    denyOutboundEncryptedConnection: async peer => deny(peer),
    denyInboundUpgradedConnection: async peer => deny(peer),
    denyOutboundUpgradedConnection: async peer => deny(peer),
  }
}

/** A submit client: dials out only, no gossip, no listening. */
export async function createClientNode (options: { dialTimeoutMs?: number, swarmKey?: Uint8Array, privateKey?: PrivateKey } = {}): Promise<Libp2p> {
  return await createLibp2p({
    ...(options.privateKey !== undefined ? { privateKey: options.privateKey } : {}),
    ...(options.swarmKey !== undefined ? { connectionProtector: preSharedKey({ psk: options.swarmKey }) } : {}),
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { dialTimeout: options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS },
  })
}
