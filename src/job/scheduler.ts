import type { Clock } from '../common/clock.ts'
import type { Lease, LeaseTable, SpeculationPolicy } from './leases.ts'

/** What a claim comes to: a lease now or once one comes back, or why not. */
export type LeaseOutcome = { kind: 'lease', lease: Lease } | { kind: 'done' } | { kind: 'wait' } | { kind: 'cancelled' }

/** What the scheduler asks of the job it schedules. */
export interface ScheduledJob {
  /** 'done' or 'cancelled' once nothing more is granted; 'hold' while nothing is granted yet (a resumed job collecting); 'open' otherwise. */
  state: () => 'open' | 'hold' | 'done' | 'cancelled'
  /** Units this peer is offered first (taken from the end). */
  preferred?: (peer: string) => number[] | undefined
  /** A unit this peer must not be given (it could not take it on). */
  refused?: (peer: string, unit: number) => boolean
  /** Units went back to the pool and no claim was waiting: the swarm should hear. */
  returned?: (pending: number) => void
  /** A lease ended without a result (expired, released, its peer gone). */
  leaseEnded?: () => void
}

interface Parked {
  peer: string
  resolve: (outcome: LeaseOutcome) => void
  timer: unknown
}

/** `park: false`: the claimant has other work; no unit free now is answered at once. */
export interface ClaimOptions { park?: boolean }

/**
 * The one scheduler of every unit of work (a tile of a phase, a whole image
 * of a batch): claims are granted from a LeaseTable, or parked until a unit
 * comes back (bounded by parkMs); expired leases go back to the pool on
 * their deadline; with the pool empty a straggler's unit is copied; a peer
 * that is gone gives back everything it held.
 */
export class LeaseScheduler {
  leases: LeaseTable
  private readonly job: ScheduledJob
  private readonly clock: Clock
  private readonly parkMs: number
  private readonly speculation: SpeculationPolicy | undefined
  private readonly parked: Parked[] = []
  private expiryTimer: unknown

  constructor (leases: LeaseTable, job: ScheduledJob, options: { clock: Clock, parkMs: number, speculation?: SpeculationPolicy }) {
    this.leases = leases
    this.job = job
    this.clock = options.clock
    this.parkMs = options.parkMs
    this.speculation = options.speculation
  }

  /** A lease now, or once a unit comes back (bounded by parkMs; at once, `wait`, if not `park`). */
  async claim (peer: string, options: ClaimOptions = {}): Promise<LeaseOutcome> {
    const now = this.tryClaim(peer)
    if (now !== undefined) return now
    if (options.park === false) return { kind: 'wait' }
    return await new Promise(resolve => {
      const entry: Parked = {
        peer,
        resolve,
        timer: this.clock.setTimeout(() => {
          const i = this.parked.indexOf(entry)
          if (i >= 0) this.parked.splice(i, 1)
          resolve({ kind: 'wait' })
        }, this.parkMs),
      }
      this.parked.push(entry)
    })
  }

  private tryClaim (peer: string): LeaseOutcome | undefined {
    const state = this.job.state()
    if (state === 'done' || state === 'cancelled') return { kind: state }
    if (state === 'hold') return undefined
    const now = this.clock.now()
    const refusedTo = this.job.refused
    const refused = refusedTo !== undefined ? (unit: number) => refusedTo(peer, unit) : undefined
    const lease = this.leases.claim(peer, now, this.job.preferred?.(peer), refused) ?? (this.speculation !== undefined ? this.leases.speculate(peer, now, this.speculation, refused) : undefined)
    if (lease === undefined) return undefined
    this.scheduleExpiry()
    return { kind: 'lease', lease }
  }

  /** Units came back (or the job's state changed): parked claims are served first; the swarm hears of what is left. */
  wake (): void {
    // Each in turn: a unit refused to the first (a check of its own tile) may be another's.
    for (let i = 0; i < this.parked.length;) {
      const entry = this.parked[i]!
      const outcome = this.tryClaim(entry.peer)
      if (outcome === undefined) { i++; continue }
      this.parked.splice(i, 1)
      this.clock.clearTimeout(entry.timer)
      entry.resolve(outcome)
    }
    if (this.job.state() === 'open' && this.leases.pendingCount > 0) this.job.returned?.(this.leases.pendingCount)
  }

  renew (peer: string, leaseId: string): boolean {
    const ok = this.leases.renew(leaseId, peer, this.clock.now()) !== undefined
    if (ok) this.scheduleExpiry()
    return ok
  }

  release (peer: string, leaseId: string): boolean {
    const ok = this.leases.release(leaseId, peer)
    if (ok) this.wake()
    this.job.leaseEnded?.()
    return ok
  }

  /** The peer's connection is gone: its claims are answered, its units need not wait for their deadlines. */
  peerGone (peer: string): number {
    for (let i = this.parked.length - 1; i >= 0; i--) {
      if (this.parked[i]!.peer === peer) {
        const [entry] = this.parked.splice(i, 1)
        this.clock.clearTimeout(entry!.timer)
        entry!.resolve({ kind: 'cancelled' })
      }
    }
    const gone = this.leases.releasePeer(peer)
    if (gone.length > 0) this.wake()
    this.job.leaseEnded?.()
    return gone.length
  }

  /** The timer follows the earliest deadline of the table in use. */
  scheduleExpiry (): void {
    if (this.expiryTimer !== undefined) this.clock.clearTimeout(this.expiryTimer)
    this.expiryTimer = undefined
    const next = this.leases.nextDeadline()
    const state = this.job.state()
    if (next === undefined || state === 'done' || state === 'cancelled') return
    this.expiryTimer = this.clock.setTimeout(() => {
      this.expiryTimer = undefined
      const late = this.leases.expire(this.clock.now())
      this.scheduleExpiry()
      if (late.length > 0) this.wake()
      this.job.leaseEnded?.()
    }, Math.max(0, next - this.clock.now()) + 1)
  }

  /** The job is over: no timer is left, and every parked claim hears how it ended. */
  settle (): void {
    if (this.expiryTimer !== undefined) this.clock.clearTimeout(this.expiryTimer)
    this.expiryTimer = undefined
    const state = this.job.state()
    for (const entry of this.parked.splice(0)) {
      this.clock.clearTimeout(entry.timer)
      entry.resolve(state === 'done' ? { kind: 'done' } : { kind: 'cancelled' })
    }
  }
}
