import { InvalidParameterError } from '../src/common/errors.ts'
import { DEFAULT_PRIORITY, PRIORITY_WEIGHT, type Priority } from '../src/protocol/constants.ts'

/**
 * The `shared` scenario's figures, pure: each running job's entitled share of
 * the swarm, the share it got over windows of time, and Jain's fairness
 * index of the two.
 */

/** A job's time in the swarm, ms from the run's start. */
export interface JobSpan {
  job: string
  submitter: string
  priority?: Priority
  startMs: number
  endMs: number
}

/** A job's units waiting at its coordinator, unclaimed, at `atMs`: whether it could have used more of the swarm then. */
export interface Backlog {
  job: string
  atMs: number
  pending: number
}

/** Compute one job got: `ms` of modelled compute, accepted by its coordinator at `atMs` (so computed over the `ms` before). */
export interface WorkDone {
  job: string
  atMs: number
  ms: number
}

/**
 * Jain's fairness index of `xs`: (Σx)² / (n·Σx²). 1 when every x is equal,
 * 1/n when one has everything; undefined for no values or all zero.
 */
export function jain (xs: readonly number[]): number | undefined {
  if (xs.some(x => !Number.isFinite(x) || x < 0)) throw new InvalidParameterError(`Jain's index takes finite values >= 0, not [${xs.join(', ')}]`)
  const sum = xs.reduce((a, b) => a + b, 0)
  const squares = xs.reduce((a, b) => a + b * b, 0)
  return squares === 0 ? undefined : sum * sum / (xs.length * squares)
}

const weightOf = (job: Pick<JobSpan, 'priority'>): number => PRIORITY_WEIGHT[job.priority ?? DEFAULT_PRIORITY]

/**
 * What each running job is entitled to: the swarm split first between the
 * submitters (each weighted by its highest-priority running job, as the
 * worker's FairShare weighs it), then a submitter's part between its jobs by
 * their weights. Sums to 1.
 */
export function entitlements (running: ReadonlyArray<Pick<JobSpan, 'job' | 'submitter' | 'priority'>>): Map<string, number> {
  const bySubmitter = new Map<string, Array<Pick<JobSpan, 'job' | 'priority'>>>()
  for (const r of running) bySubmitter.set(r.submitter, [...(bySubmitter.get(r.submitter) ?? []), r])
  const submitterWeight = new Map([...bySubmitter].map(([s, jobs]) => [s, Math.max(...jobs.map(weightOf))]))
  const total = [...submitterWeight.values()].reduce((a, b) => a + b, 0)
  const out = new Map<string, number>()
  for (const [s, jobs] of bySubmitter) {
    const own = jobs.reduce((a, j) => a + weightOf(j), 0)
    for (const j of jobs) out.set(j.job, submitterWeight.get(s)! / total * weightOf(j) / own)
  }
  return out
}

export interface WindowedFairness {
  windowMs: number
  /** Windows with two or more jobs running throughout and some of their compute done. */
  windows: number
  /** The mean of the windows' indexes; undefined with no such window. */
  index?: number
  worst?: number
  /** Each job's share of the running jobs' compute, and its entitlement, averaged over the windows it ran through. */
  shares: Map<string, { got: number, entitled: number, windows: number }>
  /** Window by window (those counted): when it began, each job's share in it, the index. */
  each: Array<{ atMs: number, got: Record<string, number>, index: number }>
}

/**
 * Jain's index of the shares, window by window: in each window of `windowMs`,
 * the jobs running throughout it (and, given their `backlog`, with units
 * waiting throughout it), each one's share of their compute done in it
 * divided by its entitlement among them (1 for all when the swarm is fair).
 */
export function windowedFairness (spans: readonly JobSpan[], work: readonly WorkDone[], windowMs: number, backlog?: readonly Backlog[]): WindowedFairness {
  if (!(windowMs > 0)) throw new InvalidParameterError(`a window of ${windowMs} ms`)
  const shares = new Map<string, { got: number, entitled: number, windows: number }>()
  const indexes: number[] = []
  const each: WindowedFairness['each'] = []
  if (spans.length === 0) return { windowMs, windows: 0, shares, each }
  const first = Math.min(...spans.map(s => s.startMs))
  const last = Math.max(...spans.map(s => s.endMs))
  const waiting = backlog === undefined ? undefined : backlogged(backlog)
  for (let t = first; t + windowMs <= last; t += windowMs) {
    const running = spans.filter(s => s.startMs <= t && s.endMs >= t + windowMs && (waiting?.(s.job, t, t + windowMs) ?? true))
    if (running.length < 2) continue
    const done = new Map(running.map(s => [s.job, 0]))
    for (const w of work) {
      // A unit's compute ran over the `ms` before it came in: a window gets the part of it that fell in the window.
      const ms = Math.min(w.atMs, t + windowMs) - Math.max(w.atMs - w.ms, t)
      if (ms > 0 && done.has(w.job)) done.set(w.job, done.get(w.job)! + ms)
    }
    const total = [...done.values()].reduce((a, b) => a + b, 0)
    if (total === 0) continue
    const entitled = entitlements(running)
    indexes.push(jain(running.map(s => done.get(s.job)! / total / entitled.get(s.job)!))!)
    each.push({ atMs: t, got: Object.fromEntries(running.map(s => [s.job, done.get(s.job)! / total])), index: indexes.at(-1)! })
    for (const s of running) {
      const sum = shares.get(s.job) ?? { got: 0, entitled: 0, windows: 0 }
      shares.set(s.job, { got: sum.got + done.get(s.job)! / total, entitled: sum.entitled + entitled.get(s.job)!, windows: sum.windows + 1 })
    }
  }
  for (const [job, s] of shares) shares.set(job, { got: s.got / s.windows, entitled: s.entitled / s.windows, windows: s.windows })
  if (indexes.length === 0) return { windowMs, windows: 0, shares, each }
  return { windowMs, windows: indexes.length, index: indexes.reduce((a, b) => a + b, 0) / indexes.length, worst: Math.min(...indexes), shares, each }
}

/**
 * Whether a job had units waiting at every sample from `from` to `to` (and
 * was sampled then): a job whose every unit is claimed has all it can use,
 * and what it does not use is others' to have. Fair queueing promises its
 * shares to the jobs that are backlogged, not to those short of work.
 */
function backlogged (samples: readonly Backlog[]): (job: string, from: number, to: number) => boolean {
  const byJob = new Map<string, Backlog[]>()
  for (const b of samples) {
    const list = byJob.get(b.job)
    if (list === undefined) byJob.set(b.job, [b])
    else list.push(b)
  }
  return (job, from, to) => {
    const inWindow = (byJob.get(job) ?? []).filter(b => b.atMs >= from && b.atMs < to)
    return inWindow.length > 0 && inWindow.every(b => b.pending > 0)
  }
}
