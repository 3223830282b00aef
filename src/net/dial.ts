import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from 'libp2p'
import { WrongPeerError } from '../common/errors.ts'

function expectedPeer (target: Multiaddr | PeerId): PeerId | undefined {
  if (!('getPeerId' in target)) return target
  const id = target.getPeerId()
  return id === null ? undefined : peerIdFromString(id)
}

/**
 * Dials `target` and makes sure the peer that answered is the one asked for.
 * This libp2p does not check the /p2p/ id of an address against the key the
 * remote proves in its handshake, so whoever answers at an address would get
 * what we send.
 */
export async function dialPeer (node: Libp2p, target: Multiaddr | PeerId, options: { signal: AbortSignal }): Promise<Connection> {
  const connection = await node.dial(target, options)
  const expected = expectedPeer(target)
  if (expected !== undefined && !connection.remotePeer.equals(expected)) {
    throw new WrongPeerError(`a different peer answered there (${connection.remotePeer.toString()}); sent it nothing`)
  }
  return connection
}

/** A stream on `protocol` to exactly the peer asked for. */
export async function openStream (node: Libp2p, target: Multiaddr | PeerId, protocol: string, options: { signal: AbortSignal }): Promise<Stream> {
  const connection = await dialPeer(node, target, options)
  return await connection.newStream(protocol, options)
}
