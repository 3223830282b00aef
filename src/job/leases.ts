/**
 * A job's tiles and their leases: plain data plus times passed in, so it is
 * tested without a network or a clock. A tile is pending, leased or done.
 * A result is accepted from anyone who ever held a lease on that tile, as long
 * as the tile is not done: a late result is still the right pixels.
 */
import { DEFAULT_MAX_LEASES_PER_PEER } from '../common/defaults.ts'

/** work: a tile to compute; copy: a second copy of a straggler's tile (speculation); offer: a finished result a worker holds, to hand over. */
export type LeaseKind = 'work' | 'copy' | 'offer'

export interface Lease {
  leaseId: string
  tile: number
  peer: string
  kind: LeaseKind
  grantedAt: number
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
  /** Second copies granted of tiles held far longer than typical, and how many of those finished first. */
  speculated: number
  speculativeWins: number
  /** Tiles finished by an earlier coordinator of the job, collected from their holders. */
  recovered: number
}

export interface SpeculationPolicy {
  /** A tile is a straggler once held this many times the median tile time. */
  afterMedians: number
  /** Copies granted, at most this share of the job's tiles. */
  maxShare: number
  /** Tile times needed before a median is trusted. */
  minSamples: number
}

export interface LeaseTableOptions {
  /** A claim flood from one peer must not starve the others: past this many, a peer waits. */
  maxLeasesPerPeer?: number
  /** Starts every lease id: a job's phases each have a table, and a lease of one is never taken for another's. */
  idPrefix?: string
  /** Tiles that exist from the start (all, unless a batch's images or a phase's checks come later). */
  opened?: number
}

/** Recent tile times kept for the median: enough to be typical, cheap to sort. */
const DURATION_SAMPLES = 255

export class LeaseTable {
  readonly tileCount: number
  readonly leaseMs: number
  private readonly done: Uint8Array
  private doneCount = 0
  /** Active leases per tile (a straggler's tile may have two). */
  private readonly onTile: Uint8Array
  private leasedTiles = 0
  /** Tiles handed back (expired or released) go first: the job waits on them. */
  private readonly returned: number[] = []
  private nextFresh = 0
  /** Tiles that exist yet: a batch's images are added as they are uploaded. */
  private opened: number
  private readonly active = new Map<string, Lease>()
  /** Every lease ever granted on a not-yet-done tile, active or not. */
  private readonly issued = new Map<string, Lease>()
  private readonly everLeased: Uint8Array
  private serial = 0
  private readonly durations: number[] = []
  private durationAt = 0
  readonly stats: LeaseStats = { granted: 0, expired: 0, released: 0, renewed: 0, duplicates: 0, reclaimed: 0, speculated: 0, speculativeWins: 0, recovered: 0 }

  /** A claim flood from one peer must not starve the others: past this many, a peer waits. */
  readonly maxLeasesPerPeer: number
  private readonly perPeer = new Map<string, number>()

  /** Starts every lease id: a job's phases each have a table, and a lease of one is never taken for another's. */
  private readonly idPrefix: string

  constructor (tileCount: number, leaseMs: number, options: LeaseTableOptions = {}) {
    this.idPrefix = options.idPrefix ?? ''
    this.opened = options.opened ?? tileCount
    this.tileCount = tileCount
    this.leaseMs = leaseMs
    this.maxLeasesPerPeer = options.maxLeasesPerPeer ?? DEFAULT_MAX_LEASES_PER_PEER
    this.done = new Uint8Array(tileCount)
    this.onTile = new Uint8Array(tileCount)
    this.everLeased = new Uint8Array(tileCount)
  }

  get completed (): number { return this.doneCount }
  get isComplete (): boolean { return this.doneCount === this.tileCount }
  get leasedCount (): number { return this.active.size }
  /** Tiles neither done nor held by anyone. */
  get pendingCount (): number { return this.opened - this.doneCount - this.leasedTiles }

  /** Every tile that exists is done (a tiled phase's extra computations come into existence as they are needed). */
  get allOpenDone (): boolean { return this.doneCount === this.opened }

  /** The next tile comes into existence (a batch's image, uploaded; a check of a tile): its index. `first`: claimed before fresh ones. */
  open (options: { first?: boolean } = {}): number {
    if (this.opened >= this.tileCount) throw new RangeError(`all ${this.tileCount} tiles are open`)
    const unit = this.opened++
    if (options.first === true) this.returned.push(unit)
    return unit
  }

  /** The tile (unit) a lease of this table was granted on, whether or not it is still held. */
  unitOfLease (leaseId: string): number | undefined {
    if (!leaseId.startsWith(this.idPrefix)) return undefined
    const unit = Number(leaseId.slice(this.idPrefix.length).split('-')[0])
    return Number.isInteger(unit) && unit >= 0 && unit < this.opened ? unit : undefined
  }

  /** A tile that cannot be done (its image failed): it counts as done, and its leases end. */
  abandon (tile: number): void {
    if (this.done[tile] === 1) return
    this.done[tile] = 1
    this.doneCount++
    for (const [id, lease] of this.issued) {
      if (lease.tile === tile) {
        this.issued.delete(id)
        this.drop(lease)
      }
    }
  }

  isDone (tile: number): boolean {
    return this.done[tile] === 1
  }

  /** Whether any lease was ever granted on the tile. */
  wasLeased (tile: number): boolean {
    return this.everLeased[tile] === 1
  }

  /**
   * A tile for `peer`: one handed back first (but none `refused` says this
   * peer must not get: those stay for others, at the front), then one of
   * `preferred` (taken from its end), then the next fresh one.
   */
  claim (peer: string, now: number, preferred?: number[], refused?: (tile: number) => boolean): Lease | undefined {
    if ((this.perPeer.get(peer) ?? 0) >= this.maxLeasesPerPeer) return undefined
    let tile: number | undefined
    const kept: number[] = []
    while (this.returned.length > 0 && tile === undefined) {
      const t = this.returned.shift()!
      if (!this.isFree(t)) continue
      if (refused?.(t) === true) kept.push(t)
      else tile = t
    }
    this.returned.unshift(...kept)
    while (preferred !== undefined && preferred.length > 0 && tile === undefined) {
      const t = preferred.pop()!
      if (this.isFree(t)) tile = t
    }
    while (tile === undefined && this.nextFresh < this.opened) {
      const t = this.nextFresh++
      if (!this.isFree(t)) continue
      if (refused?.(t) === true) this.returned.push(t)
      else tile = t
    }
    if (tile === undefined) return undefined
    return this.grant(tile, peer, 'work', now)
  }

  /**
   * A tile a worker already holds the result of, from an earlier coordinator:
   * reserved for it to hand over, for `holdMs` (a worker hands over many at
   * once, and renews none of them).
   */
  reserve (tile: number, peer: string, now: number, holdMs: number): Lease | undefined {
    if (tile < 0 || tile >= this.tileCount || !this.isFree(tile)) return undefined
    const lease = this.grant(tile, peer, 'offer', now)
    lease.deadline = now + holdMs
    return lease
  }

  /**
   * With nothing left in the pool, a second copy of the tile held longest,
   * if it is held far longer than the median tile time and copies stay within
   * their share: whichever copy finishes first wins.
   */
  speculate (peer: string, now: number, policy: SpeculationPolicy, refused?: (tile: number) => boolean): Lease | undefined {
    if (this.pendingCount > 0 || this.durations.length < policy.minSamples) return undefined
    if (this.stats.speculated >= Math.floor(this.tileCount * policy.maxShare)) return undefined
    if ((this.perPeer.get(peer) ?? 0) >= this.maxLeasesPerPeer) return undefined
    const sorted = [...this.durations].sort((a, b) => a - b)
    const straggling = now - sorted[sorted.length >> 1]! * policy.afterMedians
    let oldest: Lease | undefined
    for (const lease of this.active.values()) {
      if (lease.kind !== 'work' || lease.peer === peer || this.onTile[lease.tile]! > 1 || lease.grantedAt > straggling || refused?.(lease.tile) === true) continue
      if (oldest === undefined || lease.grantedAt < oldest.grantedAt) oldest = lease
    }
    if (oldest === undefined) return undefined
    this.stats.speculated++
    return this.grant(oldest.tile, peer, 'copy', now)
  }

  private isFree (tile: number): boolean {
    return this.done[tile] === 0 && this.onTile[tile] === 0
  }

  private grant (tile: number, peer: string, kind: LeaseKind, now: number): Lease {
    const lease = { leaseId: `${this.idPrefix}${tile}-${++this.serial}`, tile, peer, kind, grantedAt: now, deadline: now + this.leaseMs }
    this.active.set(lease.leaseId, lease)
    this.issued.set(lease.leaseId, lease)
    if (this.onTile[tile]!++ === 0) this.leasedTiles++
    this.perPeer.set(peer, (this.perPeer.get(peer) ?? 0) + 1)
    if (kind !== 'offer') {
      this.stats.granted++
      if (this.everLeased[tile] === 1 && kind === 'work') this.stats.reclaimed++
      this.everLeased[tile] = 1
    }
    return lease
  }

  /** The lease a peer holds on a tile, of a kind. */
  leaseOf (tile: number, peer: string, kind: LeaseKind): Lease | undefined {
    for (const lease of this.active.values()) if (lease.tile === tile && lease.peer === peer && lease.kind === kind) return lease
    return undefined
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
    if (--this.onTile[lease.tile]! === 0) this.leasedTiles--
    const n = (this.perPeer.get(lease.peer) ?? 1) - 1
    if (n === 0) this.perPeer.delete(lease.peer)
    else this.perPeer.set(lease.peer, n)
  }

  private end (lease: Lease): void {
    this.drop(lease)
    if (this.isFree(lease.tile)) this.returned.push(lease.tile)
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

  /**
   * First valid result wins; the tile is done and all its leases end (a
   * straggler's copy is cancelled). `timed`: its time counts towards the
   * median (not a result kept from before, which took no time).
   */
  complete (tile: number, leaseId: string, peer: string, now: number, timed = true): CompleteOutcome {
    const outcome = this.check(tile, leaseId, peer)
    if (outcome === 'duplicate') this.stats.duplicates++
    if (outcome !== 'accepted') return outcome
    const winner = this.issued.get(leaseId)!
    if (winner.kind === 'offer') this.stats.recovered++
    else if (timed) this.recordDuration(now - winner.grantedAt)
    if (winner.kind === 'copy') this.stats.speculativeWins++
    this.abandon(tile)
    return 'accepted'
  }

  private recordDuration (ms: number): void {
    if (this.durations.length < DURATION_SAMPLES) this.durations.push(ms)
    else this.durations[this.durationAt++ % DURATION_SAMPLES] = ms
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
