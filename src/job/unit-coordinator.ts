import type { Clock } from '../common/clock.ts'
import type { LeaseTable, SpeculationPolicy } from './leases.ts'
import { LeaseScheduler, type ClaimOptions, type LeaseOutcome, type ScheduledJob } from './scheduler.ts'

export type UnitState = 'running' | 'done' | 'cancelled'

/** A result handed in: taken, late (its unit done, or the job over), or refused with why. */
export interface ResultOutcome {
  status: 'accepted' | 'duplicate' | 'rejected'
  reason?: string
}

/** What a job's units are (a phase's tiles, a batch's images) decides who gets which. */
export interface UnitParts extends Omit<ScheduledJob, 'state'> {
  /** Nothing is granted until this holds (a job's input decoded). */
  ready?: () => boolean
  /** A resumed job's collection is over: every holder heard from, or the window passed. */
  collected?: () => void
}

export interface UnitCoordinatorOptions {
  clock: Clock
  /** How long a claim waits for a unit to come back before it is told to wait. */
  parkMs: number
  /** When to grant a second copy of a straggler's unit; never, if unset. */
  speculation?: SpeculationPolicy
  /**
   * A resumed job: these peers may hold units an earlier coordinator's
   * workers finished. Nothing is granted until each has been heard from or
   * the window (from startCollectWindow) has passed, so none is computed twice.
   */
  collect?: { holders: string[], windowMs: number }
}

/**
 * What a tiled job and a batch share: running, done or cancelled; a resumed
 * job's collection from its holders; claims, renewals and releases over the
 * lease scheduler. The job's units (tiles, images) check and place results.
 */
export class UnitCoordinator {
  readonly clock: Clock
  readonly parkMs: number
  private readonly scheduler: LeaseScheduler
  private current: UnitState = 'running'
  /** Holders of a resumed job not yet heard from; undefined once collection is over (or was never needed). */
  private awaitedHolders: Set<string> | undefined
  private collectWindowMs: number | undefined
  private collectTimer: unknown
  private readonly collected: (() => void) | undefined

  constructor (table: LeaseTable, parts: UnitParts, options: UnitCoordinatorOptions) {
    this.clock = options.clock
    this.parkMs = options.parkMs
    const { ready, collected, ...scheduled } = parts
    this.collected = collected
    this.scheduler = new LeaseScheduler(table, {
      ...scheduled,
      state: () => this.current !== 'running' ? this.current : this.awaitedHolders !== undefined || ready?.() === false ? 'hold' : 'open',
    }, { clock: this.clock, parkMs: this.parkMs, ...(options.speculation !== undefined ? { speculation: options.speculation } : {}) })
    if (options.collect !== undefined) {
      this.awaitedHolders = new Set(options.collect.holders)
      this.collectWindowMs = options.collect.windowMs
    }
  }

  get state (): UnitState { return this.current }
  get isRunning (): boolean { return this.current === 'running' }

  /** A resumed job still waits for holders to say what they have. */
  get collecting (): boolean { return this.awaitedHolders !== undefined }

  /** The lease table in use (a tiled job has one per phase). */
  get leases (): LeaseTable { return this.scheduler.leases }
  set leases (table: LeaseTable) { this.scheduler.leases = table }

  /** The collect window starts (once): a job's when it is made, a batch's with its first image. */
  startCollectWindow (): void {
    if (this.collectWindowMs === undefined) return
    this.collectTimer = this.clock.setTimeout(() => { this.endCollection() }, this.collectWindowMs)
    this.collectWindowMs = undefined
  }

  /** A holder of a resumed job said what it holds: once all have, units go out. */
  heardFrom (peer: string): void {
    if (this.awaitedHolders?.delete(peer) === true && this.awaitedHolders.size === 0) this.endCollection()
  }

  /** Every holder has been heard from, or the window passed: units nobody holds go out to compute. */
  private endCollection (): void {
    if (this.awaitedHolders === undefined) return
    this.awaitedHolders = undefined
    this.clock.clearTimeout(this.collectTimer)
    this.scheduler.wake()
    this.collected?.()
  }

  /** The reservations `peer` holds now, by lease id: units it said it holds, to hand over. */
  reservationsOf (peer: string): string[] {
    return this.leases.activeLeases().filter(l => l.peer === peer && l.kind === 'offer').map(l => l.leaseId)
  }

  /** A lease now, or once a unit comes back (bounded by parkMs; at once if not `park`). */
  async claim (peer: string, options: ClaimOptions = {}): Promise<LeaseOutcome> {
    return await this.scheduler.claim(peer, options)
  }

  renew (peer: string, leaseId: string): boolean {
    return this.scheduler.renew(peer, leaseId)
  }

  release (peer: string, leaseId: string): boolean {
    return this.scheduler.release(peer, leaseId)
  }

  /** The peer's connection is gone: its units need not wait for their deadlines. */
  peerGone (peer: string): number {
    return this.scheduler.peerGone(peer)
  }

  /** Units came back or came into existence: waiting claims are served. */
  wake (): void {
    this.scheduler.wake()
  }

  /** A lease's deadline moved or a table was switched to: the expiry timer follows. */
  scheduleExpiry (): void {
    this.scheduler.scheduleExpiry()
  }

  /**
   * The lease a result names, on `unit` (`what` names it for the refusal):
   * undefined if it is fresh, to be checked and placed; duplicate (counted)
   * if the unit is done; refused if the peer never held such a lease.
   */
  checkLease (unit: number, leaseId: string, peer: string, what: string): ResultOutcome | undefined {
    const check = this.leases.check(unit, leaseId, peer)
    if (check === 'duplicate') {
      this.leases.complete(unit, leaseId, peer, this.clock.now())
      return { status: 'duplicate' }
    }
    if (check === 'unknown') return { status: 'rejected', reason: `no lease ${leaseId} on ${what} for this peer` }
    return undefined
  }

  /** The job ends (if it runs): no timer is left, and waiting claims hear how. False if it had ended already. */
  end (state: 'done' | 'cancelled'): boolean {
    if (this.current !== 'running') return false
    this.current = state
    this.clock.clearTimeout(this.collectTimer)
    this.awaitedHolders = undefined
    this.scheduler.settle()
    return true
  }
}
