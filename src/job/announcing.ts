import { repeat } from '../common/clock.ts'
import { DEFAULT_ANNOUNCE_MS } from '../common/defaults.ts'
import { PROTOCOL_VERSION, type Priority } from '../protocol/constants.ts'
import type { JobHostComponents } from './hosted.ts'
import type { LeaseTable } from './leases.ts'

/** What is announced of a job (tiled or a batch): its units and their leases. */
export interface Announced {
  jobId: string
  jobKey: string
  kind: 'tiles' | 'batch'
  /** Whose it is, and how urgent: workers share their lanes by these. */
  submitter: string
  priority: Priority
  units: () => number
  /** Units finished (of the current phase's). */
  done: () => number
  running: () => boolean
  leases: () => LeaseTable
}

export interface Announcing {
  announce: () => void
  soon: () => void
  stop: () => void
}

/**
 * A job's announcements on the jobs topic, this peer's own worker told of
 * each too: `announce` now; every `everyMs` while units are pending (`tick`
 * runs on that timer as well); `soon` when units come back, but not more often
 * than a few times a second, as every announcement costs every peer a
 * signature check.
 */
export function startAnnouncing (c: Pick<JobHostComponents, 'clock' | 'publish' | 'peerId' | 'addrs' | 'worker'>, job: Announced, options: { everyMs?: number, tick: () => void }): Announcing {
  const announceMs = options.everyMs ?? DEFAULT_ANNOUNCE_MS
  let last = -Infinity
  const minGapMs = Math.max(250, announceMs / 4)
  const announce = (): void => {
    if (!job.running()) return
    last = c.clock.now()
    const leases = job.leases()
    const { jobId, jobKey, submitter, priority } = job
    void c.publish({ type: 'announce', v: PROTOCOL_VERSION, jobId, jobKey, kind: job.kind, coordinator: c.peerId, addrs: c.addrs(), tiles: job.units(), pending: leases.pendingCount, done: job.done(), leaseMs: leases.leaseMs, submitter, priority })
    c.worker.addJob({ jobId, coordinator: c.peerId, addrs: [], jobKey, submitter, priority })
  }
  const stop = repeat(c.clock, announceMs, () => {
    if (job.leases().pendingCount > 0) announce()
    options.tick()
  })
  return { announce, soon: () => { if (c.clock.now() - last > minGapMs) announce() }, stop }
}
