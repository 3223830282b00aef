/**
 * A job's tiles and their leases: plain data plus times passed in, so it is
 * tested without a network or a clock. A tile is pending, leased or done.
 * A result is accepted from anyone who ever held a lease on that tile, as long
 * as the tile is not done: a late result is still the right pixels.
 */
import { DEFAULT_MAX_LEASES_PER_PEER } from '../defaults.ts'

export interface Lease {
  leaseId: string
  tile: number
  peer: string
  deadline: number
}

export type CompleteOutcome = 'accepted' | 'duplicate' | 'unknown'

export interface LeaseStats {
  granted: number
  expired: number
  released: number
  renewed: number
  duplicates: number
  /** Tiles granted again after an earlier lease on them ended. */
  reclaimed: number
}

export class LeaseTable {
  readonly tileCount: number
  readonly leaseMs: number
  private readonly done: Uint8Array
  private doneCount = 0
  /** Tiles handed back (expired or released) go first: the job waits on them. */
  private readonly returned: number[] = []
  private nextFresh = 0
  private readonly active = new Map<string, Lease>()
  /** Every lease ever granted on a not-yet-done tile, active or not. */
  private readonly issued = new Map<string, Lease>()
  private readonly everLeased: Uint8Array
  private serial = 0
  readonly stats: LeaseStats = { granted: 0, expired: 0, released: 0, renewed: 0, duplicates: 0, reclaimed: 0 }

  /** A claim flood from one peer must not starve the others: past this many, a peer waits. */
  readonly maxLeasesPerPeer: number
  private readonly perPeer = new Map<string, number>()

  constructor (tileCount: number, leaseMs: number, maxLeasesPerPeer = DEFAULT_MAX_LEASES_PER_PEER) {
    this.tileCount = tileCount
    this.leaseMs = leaseMs
    this.maxLeasesPerPeer = maxLeasesPerPeer
    this.done = new Uint8Array(tileCount)
    this.everLeased = new Uint8Array(tileCount)
  }

  get completed (): number { return this.doneCount }
  get isComplete (): boolean { return this.doneCount === this.tileCount }
  get leasedCount (): number { return this.active.size }
  get pendingCount (): number { return this.returned.length + (this.tileCount - this.nextFresh) }

  claim (peer: string, now: number): Lease | undefined {
    if ((this.perPeer.get(peer) ?? 0) >= this.maxLeasesPerPeer) return undefined
    let tile: number | undefined
    while (this.returned.length > 0 && tile === undefined) {
      const t = this.returned.shift()!
      if (this.done[t] === 0 && !this.isLeased(t)) tile = t
    }
    if (tile === undefined && this.nextFresh < this.tileCount) tile = this.nextFresh++
    if (tile === undefined) return undefined
    const lease = { leaseId: `${tile}-${++this.serial}`, tile, peer, deadline: now + this.leaseMs }
    this.active.set(lease.leaseId, lease)
    this.issued.set(lease.leaseId, lease)
    this.perPeer.set(peer, (this.perPeer.get(peer) ?? 0) + 1)
    this.stats.granted++
    if (this.everLeased[tile] === 1) this.stats.reclaimed++
    this.everLeased[tile] = 1
    return lease
  }

  private isLeased (tile: number): boolean {
    for (const lease of this.active.values()) if (lease.tile === tile) return true
    return false
  }

  renew (leaseId: string, peer: string, now: number): Lease | undefined {
    const lease = this.active.get(leaseId)
    if (lease === undefined || lease.peer !== peer) return undefined
    lease.deadline = now + this.leaseMs
    this.stats.renewed++
    return lease
  }

  /** A worker hands a lease back (it is stopping): the tile is free at once. */
  release (leaseId: string, peer: string): boolean {
    const lease = this.active.get(leaseId)
    if (lease === undefined || lease.peer !== peer) return false
    this.end(lease)
    this.stats.released++
    return true
  }

  /** Everything a peer holds goes back (its connection is gone). */
  releasePeer (peer: string): Lease[] {
    const gone = [...this.active.values()].filter(l => l.peer === peer)
    for (const lease of gone) this.end(lease)
    this.stats.released += gone.length
    return gone
  }

  /** Leases past their deadline end; their tiles go back to the pool. */
  expire (now: number): Lease[] {
    const late = [...this.active.values()].filter(l => l.deadline <= now)
    for (const lease of late) this.end(lease)
    this.stats.expired += late.length
    return late
  }

  private drop (lease: Lease): void {
    if (!this.active.delete(lease.leaseId)) return
    const n = (this.perPeer.get(lease.peer) ?? 1) - 1
    if (n === 0) this.perPeer.delete(lease.peer)
    else this.perPeer.set(lease.peer, n)
  }

  private end (lease: Lease): void {
    this.drop(lease)
    if (this.done[lease.tile] === 0) this.returned.push(lease.tile)
  }

  /**
   * Checks a result before its pixels are looked at: who may deliver it.
   * Does not change state; `complete` does.
   */
  check (tile: number, leaseId: string, peer: string): CompleteOutcome {
    if (tile < 0 || tile >= this.tileCount) return 'unknown'
    if (this.done[tile] === 1) return 'duplicate'
    const lease = this.issued.get(leaseId)
    if (lease === undefined || lease.tile !== tile || lease.peer !== peer) return 'unknown'
    return 'accepted'
  }

  /** First valid result wins; the tile is done and all its leases end. */
  complete (tile: number, leaseId: string, peer: string): CompleteOutcome {
    const outcome = this.check(tile, leaseId, peer)
    if (outcome === 'duplicate') this.stats.duplicates++
    if (outcome !== 'accepted') return outcome
    this.done[tile] = 1
    this.doneCount++
    for (const [id, lease] of this.issued) {
      if (lease.tile === tile) {
        this.issued.delete(id)
        this.drop(lease)
      }
    }
    return 'accepted'
  }

  nextDeadline (): number | undefined {
    let min: number | undefined
    for (const lease of this.active.values()) if (min === undefined || lease.deadline < min) min = lease.deadline
    return min
  }

  activeLeases (): Lease[] {
    return [...this.active.values()]
  }
}
