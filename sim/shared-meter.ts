import type { JobCoordinator } from '../src/job/coordinator.ts'
import type { BatchCoordinator } from '../src/job/batch.ts'
import type { Cluster } from './cluster.ts'
import type { Backlog, WorkDone } from './shared-fairness.ts'

/** How often each running job's waiting units are counted. */
export const BACKLOG_SAMPLE_MS = 20

/**
 * The compute each job got, as its coordinator accepts it: a tile's core
 * pixels (or a batch image's) times the cost model's ns per pixel, stamped
 * when it came in. Results a worker kept from an earlier coordinator are not
 * compute, and are counted apart. Each running job's units waiting (not
 * claimed) are counted every few ms.
 */
export class ComputeMeter {
  readonly work: WorkDone[] = []
  /** Batch images that came from a worker's cache, by job id. */
  readonly kept = new Map<string, number>()
  /** Each running job's units waiting at its coordinator, sampled: whether it could have used more of the swarm. */
  readonly backlog: Backlog[] = []
  /** When each job's coordinator took it on (performance.now()): from then its units may be claimed. */
  readonly started = new Map<string, number>()
  private readonly nsPerPixel: number

  constructor (cluster: Cluster, nsPerPixel: number) {
    this.nsPerPixel = nsPerPixel
    for (const peer of cluster.peers) {
      peer.events.addEventListener('job', evt => { this.tiled((evt as CustomEvent<JobCoordinator>).detail) })
      peer.events.addEventListener('batch', evt => { this.batch((evt as CustomEvent<BatchCoordinator>).detail) })
    }
  }

  /**
   * When `jobId` competed for the swarm, ms from `originMs`: from its
   * coordinator taking it on to its last unit in; not the client's upload
   * before, nor the encode and the result's way back after, when it has
   * nothing for the swarm to do.
   */
  competing (jobId: string, originMs: number): { startMs: number, endMs: number } | undefined {
    const started = this.started.get(jobId)
    const last = Math.max(...this.work.filter(w => w.job === jobId).map(w => w.atMs))
    return started === undefined || !Number.isFinite(last) ? undefined : { startMs: started - originMs, endMs: last - originMs }
  }

  /** `jobId`'s backlog samples, their times from `originMs`. */
  backlogOf (jobId: string, originMs: number): Backlog[] {
    return this.backlog.filter(b => b.job === jobId).map(b => ({ ...b, atMs: b.atMs - originMs }))
  }

  /** Work done for `jobId`, its times from `originMs` (a performance.now()). */
  of (jobId: string, originMs: number): WorkDone[] {
    return this.work.filter(w => w.job === jobId).map(w => ({ ...w, atMs: w.atMs - originMs }))
  }

  private sample (jobId: string, job: { readonly leases: { pendingCount: number }, readonly isRunning: boolean }): void {
    const timer = setInterval(() => {
      if (!job.isRunning) { clearInterval(timer); return }
      this.backlog.push({ job: jobId, atMs: performance.now(), pending: job.leases.pendingCount })
    }, BACKLOG_SAMPLE_MS)
    timer.unref()
  }

  private tiled (job: JobCoordinator): void {
    this.started.set(job.jobId, performance.now())
    this.sample(job.jobId, job)
    job.on('placed', tile => {
      const core = job.tiles[tile]?.core
      if (core !== undefined) this.add(job.jobId, core.width * core.height)
    })
  }

  private batch (job: BatchCoordinator): void {
    this.started.set(job.jobId, performance.now())
    this.sample(job.jobId, job)
    job.on('image', (_task, output, _peer, recovered) => {
      if (recovered) this.kept.set(job.jobId, (this.kept.get(job.jobId) ?? 0) + 1)
      else this.add(job.jobId, output.width * output.height)
    })
  }

  private add (job: string, pixels: number): void {
    this.work.push({ job, atMs: performance.now(), ms: pixels * this.nsPerPixel / 1e6 })
  }
}
