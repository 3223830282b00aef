import type { Clock } from '../common/clock.ts'
import { FINISHED_BY_PEER_KEPT, FINISHED_JOBS_KEPT_MS } from '../common/defaults.ts'
import type { HostedJob, JobOutcome } from '../job/hosted.ts'
import { MAX_FINISHED_JOBS } from '../protocol/constants.ts'
import type { FinishedJobView } from '../protocol/messages.ts'

/**
 * Jobs that ended on this peer, for `tileswarm jobs` and the dashboard: how
 * each ended and how long it ran, kept an hour and no more than a status
 * names (the oldest go first).
 */
export class JobHistory {
  private readonly clock: Clock
  private readonly ended: Array<{ job: HostedJob, outcome: JobOutcome, ms: number, at: number }> = []

  constructor (components: { clock: Clock }) {
    this.clock = components.clock
  }

  add (job: HostedJob, outcome: JobOutcome, ms: number): void {
    this.ended.push({ job, outcome, ms, at: this.clock.now() })
    if (this.ended.length > MAX_FINISHED_JOBS) this.ended.shift()
  }

  /** The last hour's, newest first. */
  view (): FinishedJobView[] {
    const now = this.clock.now()
    while (this.ended.length > 0 && now - this.ended[0]!.at > FINISHED_JOBS_KEPT_MS) this.ended.shift()
    return this.ended.map(({ job, outcome, ms, at }) => ({
      jobId: job.jobId,
      kind: job.kind,
      client: job.client,
      outcome,
      ms: Math.round(ms),
      endedS: Math.round((now - at) / 1000),
      done: job.done,
      total: job.total,
      ops: job.ops,
      inputBytes: job.bytesIn,
      byPeer: Object.fromEntries(Object.entries(job.byPeer).sort((a, b) => b[1] - a[1]).slice(0, FINISHED_BY_PEER_KEPT)),
      submitter: job.submitter,
      ...(job.name !== undefined ? { inputName: job.name } : {}),
    })).reverse()
  }
}
