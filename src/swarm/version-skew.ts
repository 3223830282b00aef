import type { IdentifyResult, Libp2p } from '@libp2p/interface'
import { VERSION } from '../common/version.ts'
import type { Log } from '../common/log.ts'
import type { Startable } from '../common/startable.ts'
import { described, speaksOf, type Speaks } from '../net/agent.ts'
import { PROTOCOL_VERSION } from '../protocol/constants.ts'

/** Peers of another version remembered for the status view, at most. */
const MAX_SKEWED = 64

/** A peer met that speaks another protocol: who, what it says it is, and when. */
export interface OtherVersion { peerId: string, protocol: number, version?: string }

/**
 * Peers of other versions, told of. Their hellos go to another topic and
 * their protocol ids differ, so without this a mixed swarm splits in
 * silence; identify (which every version speaks) says what each runs. Each
 * such peer is logged once, by each side, and listed in the status.
 */
export class VersionSkew implements Startable {
  private readonly node: Libp2p
  private readonly log: Log
  private readonly own: Speaks
  private readonly met = new Map<string, OtherVersion>()
  private readonly heard = (e: CustomEvent<IdentifyResult>): void => { this.identified(e.detail) }

  constructor (components: { node: Libp2p, log: Log }, options: { own?: Speaks } = {}) {
    this.node = components.node
    this.log = components.log
    this.own = options.own ?? { protocol: PROTOCOL_VERSION, version: VERSION }
  }

  async start (): Promise<void> {
    this.node.addEventListener('peer:identify', this.heard)
  }

  async stop (): Promise<void> {
    this.node.removeEventListener('peer:identify', this.heard)
  }

  /** Peers of other protocols met since this peer started (the latest MAX_SKEWED). */
  others (): OtherVersion[] {
    return [...this.met.values()]
  }

  /** What the status says of versions: this peer's protocol, and the others met. */
  statusFields (): { protocol: number, otherVersions?: OtherVersion[] } {
    const others = this.others()
    return { protocol: this.own.protocol, ...(others.length > 0 ? { otherVersions: others } : {}) }
  }

  private identified (result: IdentifyResult): void {
    const speaks = speaksOf(result)
    const id = result.peerId.toString()
    if (speaks === undefined || speaks.protocol === this.own.protocol || this.met.has(id)) return
    this.met.set(id, { peerId: id, protocol: speaks.protocol, ...(speaks.version !== undefined ? { version: speaks.version } : {}) })
    if (this.met.size > MAX_SKEWED) this.met.delete(this.met.keys().next().value!)
    const older = speaks.protocol < this.own.protocol
    this.log(`peer ${id} speaks tileswarm ${described(speaks)}; this peer speaks ${this.own.protocol} (${this.own.version ?? '?'}): they cannot share jobs; upgrade ${older ? id : 'this peer'} (docs/operating.md: upgrades)`, 'warn')
  }
}
