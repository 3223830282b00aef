/** A job as the fair share weighs it: whose it is and its weight (its priority's). */
export interface ShareJob {
  jobId: string
  submitter: string
  weight: number
}

/** A job a lane could take now, with the lanes on it (the deciding lane's own included, where it is on it). */
export interface ShareCandidate {
  jobId: string
  lanes: number
}

interface JobShare {
  submitter: string
  weight: number
  /** Virtual time: compute time given, over the weight, from where the job came in. */
  v: number
  /** No units for this worker for now: when it has some again it starts at the current virtual time. */
  idle: boolean
  /** Its units' time here, smoothed: what a lane on it will cost next. */
  unitMs: number | undefined
}

interface SubmitterShare {
  v: number
  jobs: Set<string>
}

/** How much a new unit's time moves a job's estimate. */
const UNIT_MS_SMOOTHING = 0.3

/**
 * Weighted fair queueing of one worker's lanes, with no clock of its own:
 * first between submitters, then between a submitter's jobs. Each is charged
 * the compute time its units took here, over its weight; a lane takes the
 * job whose next unit ends first in that virtual time, counting the units
 * other lanes have under way. A newcomer (or a job with units again after a
 * wait) starts at the current virtual time: neither ahead, to take
 * everything until it caught up, nor behind. A lane leaves its job only for
 * one at least half a unit behind, so lanes do not flap between equals.
 */
export class FairShare {
  private readonly jobs = new Map<string, JobShare>()
  private readonly submitters = new Map<string, SubmitterShare>()
  /** Every job's units, smoothed: the estimate for a job with none yet. */
  private meanUnitMs: number | undefined

  has (jobId: string): boolean { return this.jobs.has(jobId) }

  /** A job this worker knows of now; known already, its weight is updated. */
  add (job: ShareJob): void {
    const known = this.jobs.get(job.jobId)
    if (known !== undefined) { known.weight = job.weight; return }
    let sub = this.submitters.get(job.submitter)
    if (sub === undefined) {
      sub = { v: this.virtualTime([...this.submitters.values()].filter(s => this.busy(s))) ?? 0, jobs: new Set() }
      this.submitters.set(job.submitter, sub)
    }
    const v = this.virtualTime(this.siblings(sub)) ?? 0
    sub.jobs.add(job.jobId)
    this.jobs.set(job.jobId, { submitter: job.submitter, weight: job.weight, v, idle: false, unitMs: undefined })
  }

  /** The job is over here, or left: forgotten, and its submitter with its last job. */
  drop (jobId: string): void {
    const job = this.jobs.get(jobId)
    if (job === undefined) return
    this.jobs.delete(jobId)
    const sub = this.submitters.get(job.submitter)!
    sub.jobs.delete(jobId)
    if (sub.jobs.size === 0) this.submitters.delete(job.submitter)
  }

  /** The job has no units for this worker for now (it said wait, or its link is down). */
  idle (jobId: string): void {
    const job = this.jobs.get(jobId)
    if (job !== undefined) job.idle = true
  }

  /** A unit of the job took `ms` here: charged to the job and its submitter, each over its weight. */
  charge (jobId: string, ms: number): void {
    const job = this.jobs.get(jobId)
    if (job === undefined || !(ms >= 0)) return
    job.v += ms / job.weight
    const sub = this.submitters.get(job.submitter)!
    sub.v += ms / this.weightOf(sub)
    job.unitMs = smooth(job.unitMs, ms)
    this.meanUnitMs = smooth(this.meanUnitMs, ms)
  }

  /**
   * The job a lane should do a unit of next, of `candidates` (those with
   * units for it now); `from`: the job the lane is on, which it keeps unless
   * another is further behind than half a unit.
   */
  choose (candidates: readonly ShareCandidate[], from?: string): string | undefined {
    const known = candidates.filter(c => this.jobs.has(c.jobId))
    if (known.length === 0) return candidates[0]?.jobId
    this.wake(known)
    const lanes = new Map(known.map(c => [c.jobId, Math.max(0, c.lanes - (c.jobId === from ? 1 : 0))]))
    const bySubmitter = new Map<string, string[]>()
    for (const c of known) {
      const s = this.jobs.get(c.jobId)!.submitter
      const ids = bySubmitter.get(s)
      if (ids === undefined) bySubmitter.set(s, [c.jobId])
      else ids.push(c.jobId)
    }
    const fromSubmitter = from !== undefined && lanes.has(from) ? this.jobs.get(from)!.submitter : undefined
    let best: { submitter: string, jobId: string, score: number } | undefined
    let mine: { jobId: string, score: number } | undefined
    for (const [submitter, ids] of bySubmitter) {
      const jobId = this.chooseWithin(ids, lanes, submitter === fromSubmitter ? from : undefined)
      const score = this.submitterScore(submitter, jobId, lanes)
      if (submitter === fromSubmitter) mine = { jobId, score }
      if (best === undefined || score < best.score) best = { submitter, jobId, score }
    }
    if (mine !== undefined && mine.score - best!.score <= this.quantum(from!, this.weightOf(this.submitters.get(fromSubmitter!)!))) return mine.jobId
    return best!.jobId
  }

  /** A submitter's job to run next, the lane's own kept within half a unit. */
  private chooseWithin (ids: string[], lanes: Map<string, number>, from: string | undefined): string {
    let best: { jobId: string, score: number } | undefined
    for (const jobId of ids) {
      const score = this.jobScore(jobId, lanes)
      if (best === undefined || score < best.score) best = { jobId, score }
    }
    if (from !== undefined && this.jobScore(from, lanes) - best!.score <= this.quantum(from, this.jobs.get(from)!.weight)) return from
    return best!.jobId
  }

  /** When the job's next unit would end, in its virtual time, after those under way. */
  private jobScore (jobId: string, lanes: Map<string, number>): number {
    const job = this.jobs.get(jobId)!
    return job.v + ((lanes.get(jobId) ?? 0) + 1) * this.unitMs(job) / job.weight
  }

  /** When the submitter's next unit (of `next`) would end, in its virtual time, after those of its jobs under way. */
  private submitterScore (submitter: string, next: string, lanes: Map<string, number>): number {
    const sub = this.submitters.get(submitter)!
    let ms = this.unitMs(this.jobs.get(next)!)
    for (const jobId of sub.jobs) ms += (lanes.get(jobId) ?? 0) * this.unitMs(this.jobs.get(jobId)!)
    return sub.v + ms / this.weightOf(sub)
  }

  private quantum (jobId: string, weight: number): number {
    return this.unitMs(this.jobs.get(jobId)!) / 2 / weight
  }

  /** Jobs with units again after a wait start at the current virtual time (and their submitter, if it had none). */
  private wake (candidates: readonly ShareCandidate[]): void {
    for (const c of candidates) {
      const job = this.jobs.get(c.jobId)!
      if (!job.idle) continue
      const sub = this.submitters.get(job.submitter)!
      if (!this.busy(sub)) sub.v = Math.max(sub.v, this.virtualTime([...this.submitters.values()].filter(s => s !== sub && this.busy(s))) ?? sub.v)
      job.v = Math.max(job.v, this.virtualTime(this.siblings(sub)) ?? job.v)
      job.idle = false
    }
  }

  /** The least virtual time of those given: where a newcomer among them starts. */
  private virtualTime (shares: Array<{ v: number }>): number | undefined {
    return shares.length === 0 ? undefined : Math.min(...shares.map(s => s.v))
  }

  private siblings (sub: SubmitterShare): JobShare[] {
    return [...sub.jobs].map(id => this.jobs.get(id)!).filter(j => !j.idle)
  }

  private busy (sub: SubmitterShare): boolean {
    return this.siblings(sub).length > 0
  }

  /** A submitter weighs as its weightiest job: many jobs of one person weigh no more than one. */
  private weightOf (sub: SubmitterShare): number {
    let w = 0
    for (const id of sub.jobs) w = Math.max(w, this.jobs.get(id)!.weight)
    return w
  }

  private unitMs (job: JobShare): number {
    return job.unitMs ?? this.meanUnitMs ?? 1
  }
}

function smooth (was: number | undefined, ms: number): number {
  return was === undefined ? ms : was + UNIT_MS_SMOOTHING * (ms - was)
}
