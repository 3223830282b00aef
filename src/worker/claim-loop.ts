import type { Clock } from '../common/clock.ts'
import { meteringWaits, type Gate } from '../imaging/index.ts'
import type { ClaimReply, CoordinatorLink } from './coordinator-link.ts'
import type { JobRef } from '../protocol/job-ref.ts'
import type { LeaseKeeper } from './lease-keeper.ts'
import type { ResultCache } from './result-cache.ts'

/** Why a lane left its job: the coordinator's word, the worker is stopping, or another job is owed its share ('yield'). */
export type LaneEnd = 'done' | 'wait' | 'cancelled' | 'excluded' | 'stopped' | 'yield'

/** What became of one unit: the coordinator's ack, or nothing sent. */
export type UnitStatus = 'accepted' | 'duplicate' | 'rejected' | undefined

export type Granted = Exclude<ClaimReply, { kind: 'none' }>

/** What every lane shares with its worker. */
export interface LaneContext {
  clock: Clock
  keeper: LeaseKeeper
  /** Aborted when the worker stops: no unit starts after it, no result goes (its lease went back already). */
  signal: AbortSignal
  /** Bounds the passes under way at once. */
  gate: Gate
  /** This peer: a result for its own coordinator needs no keeping. */
  peerId: string
  /** Results kept for a later coordinator of the same job. */
  cache?: ResultCache | undefined
  /** A unit this lane did was accepted by its coordinator; `ms`: its time in this worker (compute and send). */
  onAccepted: (ref: JobRef, kind: 'tile' | 'image', ms: number) => void
  /** A unit of the job took `ms` here (less its waits for the gate and the pool), accepted or not (its share is charged); whether the lane does another of it, or goes where the shares say. */
  stay: (ref: JobRef, ms: number) => boolean
  /** Whether a claim on this job may wait at its coordinator for a unit to come back: not while another job could use the lane. */
  mayPark: (ref: JobRef) => boolean
}

/**
 * One lane on one job until it has nothing for us, or another job is owed
 * the lane (then a prefetched grant goes back): claim a unit, prefetch the
 * next while `unit` does this one (unless `prefetch` is off), count what was
 * accepted.
 */
export async function claimLoop (link: CoordinatorLink, lane: LaneContext, unit: (reply: Granted) => Promise<UnitStatus>, options: { prefetch: boolean }): Promise<LaneEnd> {
  const { keeper, clock, signal } = lane
  let next: Promise<ClaimReply> | undefined = keeper.claim(link, { park: lane.mayPark(link.ref) })
  try {
    while (next !== undefined) {
      const reply: ClaimReply = await next
      next = undefined
      if (reply.kind === 'none') return reply.reason
      if (signal.aborted) return 'stopped'
      if (options.prefetch) next = keeper.claim(link, { park: lane.mayPark(link.ref) })
      const began = clock.now()
      const waits = { ms: 0 }
      const status = await meteringWaits(waits, async () => await unit(reply))
      const ms = clock.now() - began
      if (status === 'accepted') lane.onAccepted(link.ref, reply.kind === 'task' ? 'image' : 'tile', ms)
      if (signal.aborted) continue
      // Its share is charged what the unit took less its waits behind other jobs' passes.
      if (!lane.stay(link.ref, Math.max(0, ms - waits.ms))) return 'yield'
      if (!options.prefetch) next = keeper.claim(link, { park: lane.mayPark(link.ref) })
    }
    return 'stopped'
  } finally {
    keeper.giveBack(link, next)
  }
}
