import type { PeerId } from '@libp2p/interface'
import type { Libp2p } from 'libp2p'
import { VERSION } from '../common/version.ts'
import { PROTOCOL_VERSION } from '../protocol/constants.ts'

/** What a peer says it is: the protocol it speaks and its build, as far as it says. */
export interface Speaks {
  protocol: number
  version?: string
}

/** This build's identify agentVersion: the one place a peer of any version can read which it is. */
export function agentVersion (own: Speaks = { protocol: PROTOCOL_VERSION, version: VERSION }): string {
  return `tileswarm/${own.version ?? '?'} (protocol ${own.protocol})`
}

/**
 * Which tileswarm a remote speaks, from its identify: its agentVersion if
 * it says (this build and later), else the version in its tileswarm protocol
 * ids (older builds); undefined for a node that is no tileswarm peer.
 */
export function speaksOf (identified: { agentVersion?: string, protocols: string[] }): Speaks | undefined {
  const said = /tileswarm\/(\S+) \(protocol (\d+)\)/.exec(identified.agentVersion ?? '')
  if (said !== null) return { protocol: Number(said[2]), ...(said[1] !== '?' ? { version: said[1]! } : {}) }
  const ids = identified.protocols.map(p => /^\/tileswarm\/[a-z-]+\/(\d+)\.\d+\.\d+$/.exec(p)?.[1]).filter(x => x !== undefined)
  return ids.length > 0 ? { protocol: Math.max(...ids.map(Number)) } : undefined
}

/** How a peer of another protocol is told of: `protocol 5 (0.1.0)`. */
export const described = (s: Speaks): string => `protocol ${s.protocol}${s.version !== undefined ? ` (${s.version})` : ''}`

/**
 * Why a peer refused our protocol, from what its identify said (waited for
 * up to `waitMs` if it has not come yet): its version, or undefined if it
 * speaks ours or said nothing.
 */
export async function versionRefusal (node: Libp2p, peer: PeerId, waitMs: number): Promise<string | undefined> {
  const read = async (): Promise<Speaks | undefined> => {
    const known = await node.peerStore.get(peer).catch(() => undefined)
    if (known === undefined) return undefined
    const agent = known.metadata.get('AgentVersion')
    return speaksOf({ ...(agent !== undefined ? { agentVersion: new TextDecoder().decode(agent) } : {}), protocols: known.protocols })
  }
  let speaks = await read()
  if (speaks === undefined) {
    speaks = await new Promise<Speaks | undefined>(resolve => {
      const done = (s: Speaks | undefined): void => { clearTimeout(timer); node.removeEventListener('peer:identify', heard); resolve(s) }
      const heard = (e: CustomEvent<{ peerId: PeerId, agentVersion?: string, protocols: string[] }>): void => { if (e.detail.peerId.equals(peer)) done(speaksOf(e.detail)) }
      // Its identify may have landed while the store was read: read once more before giving up.
      const timer = setTimeout(() => { void read().then(done) }, waitMs)
      node.addEventListener('peer:identify', heard)
    })
  }
  if (speaks === undefined || speaks.protocol === PROTOCOL_VERSION) return undefined
  return `this peer runs tileswarm ${described(speaks)}; this client speaks ${PROTOCOL_VERSION} (${VERSION}): ${speaks.protocol < PROTOCOL_VERSION ? 'its operator must upgrade it' : 'upgrade this client'}`
}
