import { repeat, whenAborted, type Clock } from '../common/clock.ts'
import type { ClaimReply, CoordinatorLink } from './coordinator-link.ts'

/** Often enough that a renewal lands well inside even a short lease; each tick scans a few held leases. */
const RENEW_CHECK_MS = 50

interface HeldLease {
  link: CoordinatorLink
  leaseMs: number
  renewedAt: number
}

/** The lease a claim's reply grants, if it grants one. */
function leaseOf (reply: ClaimReply): { leaseId: string, leaseMs: number } | undefined {
  if (reply.kind === 'none') return undefined
  return reply.kind === 'grant' ? reply.work : reply.task
}

/**
 * The leases a worker holds, from the moment a grant arrives until its unit
 * is settled: renewed at a third of their time, a prefetched grant not used
 * given back, every one handed back at once on stop.
 */
export class LeaseKeeper {
  private readonly clock: Clock
  private readonly held = new Map<string, HeldLease>()
  private stopRenewing: (() => void) | undefined

  constructor (options: { clock: Clock }) {
    this.clock = options.clock
  }

  get size (): number { return this.held.size }

  start (): void {
    this.stopRenewing = repeat(this.clock, RENEW_CHECK_MS, () => { this.renewDue() })
  }

  /** The job is over (done, cancelled, its coordinator gone): its leases are nothing to renew or hand back. */
  forgetJob (jobId: string): void {
    for (const [leaseId, lease] of this.held) if (lease.link.ref.jobId === jobId) this.held.delete(leaseId)
  }

  /** A claim whose grant is held (renewed, handed back on stop) from the moment it arrives. */
  claim (link: CoordinatorLink, options: { park?: boolean } = {}): Promise<ClaimReply> {
    const reply = link.claim(options).then(r => {
      const lease = leaseOf(r)
      if (lease !== undefined) this.held.set(lease.leaseId, { link, leaseMs: lease.leaseMs, renewedAt: this.clock.now() })
      return r
    })
    // A prefetch may fail while we compute, before anyone awaits it: that must not count as unhandled.
    reply.catch(() => {})
    return reply
  }

  /** The unit's result goes, or it failed and was reported: its lease is no longer this worker's to renew or hand back. */
  settle (leaseId: string): void {
    this.held.delete(leaseId)
  }

  /** A prefetched grant we will not use goes straight back. */
  giveBack (link: CoordinatorLink, next: Promise<ClaimReply> | undefined): void {
    void next?.then(async reply => {
      const lease = leaseOf(reply)
      if (lease !== undefined && this.held.delete(lease.leaseId)) await link.release(lease.leaseId).catch(() => {})
    }, () => {})
  }

  private renewDue (): void {
    const now = this.clock.now()
    for (const [leaseId, lease] of this.held) {
      if (now - lease.renewedAt < lease.leaseMs / 3) continue
      lease.renewedAt = now
      void lease.link.renew(leaseId).then(ok => { if (!ok) this.held.delete(leaseId) }, () => { this.held.delete(leaseId) })
    }
  }

  /** Stops renewing and hands every lease back at once; `signal` bounds the wait for the coordinators' answers. */
  async stop (signal: AbortSignal): Promise<void> {
    this.stopRenewing?.()
    const releases = [...this.held].map(async ([leaseId, lease]) => {
      this.held.delete(leaseId)
      await lease.link.release(leaseId).catch(() => {})
    })
    await Promise.race([Promise.allSettled(releases), whenAborted(signal)])
  }
}
