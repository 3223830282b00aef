import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { VERSION } from '../common/version.ts'
import type { HostedJob, JobOutcome } from '../job/hosted.ts'
import type { Startable } from '../common/startable.ts'
import type { JobEnded, JobTotals } from './submit-service.ts'
import type { Scaler } from './scaler.ts'

/** What a peer's metrics read when Prometheus scrapes: every value is the peer's own count, read then. */
export interface MetricSources {
  /** Units, leases and bytes of the jobs coordinated here since the peer started (monotonic). */
  totals: () => JobTotals
  peersConnected: () => number
  connections: () => number
  activeJobs: () => number
  heldLeases: () => number
  cachedResultBytes: () => number
  /** The scale hooks' backlog and decisions, on a peer that has them. */
  scaling: () => Scaler | undefined
}

/**
 * A peer's Prometheus metrics (`/metrics`), in a registry of its own, so
 * peers in one process (the tests, the simulator) do not share counters.
 * Started, it counts the jobs that end (the peer's 'ended' events).
 */
export class PeerMetrics implements Startable {
  readonly registry = new Registry()
  private readonly events: EventTarget | undefined
  private readonly unitsComputed: Counter<'kind'>
  private readonly unitSeconds: Histogram<'kind'>
  private readonly jobsEnded: Counter<'kind' | 'outcome'>
  private readonly jobSeconds: Histogram<'kind'>
  private sources: MetricSources | undefined
  private processMetrics = false

  constructor (components: { events?: EventTarget } = {}) {
    this.events = components.events
    const registers = [this.registry]
    new Gauge({ name: 'tileswarm_info', help: 'This peer\'s version', labelNames: ['version'], registers }).set({ version: VERSION }, 1)
    this.unitsComputed = new Counter({ name: 'tileswarm_worker_units_total', help: 'Tiles and batch images this peer\'s worker computed and its coordinators accepted', labelNames: ['kind'], registers })
    this.unitSeconds = new Histogram({ name: 'tileswarm_worker_unit_seconds', help: 'Time a tile or batch image spent in this peer\'s worker (compute and send)', labelNames: ['kind'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers })
    this.jobsEnded = new Counter({ name: 'tileswarm_jobs_total', help: 'Jobs coordinated here that ended, by kind and outcome', labelNames: ['kind', 'outcome'], registers })
    this.jobSeconds = new Histogram({ name: 'tileswarm_job_seconds', help: 'Duration of jobs coordinated here, admission to end', labelNames: ['kind'], buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900], registers })
    this.coordinatedMetrics(registers)
    this.scalingMetrics(registers)
  }

  /** Counters and gauges of the jobs coordinated here and of the peer, read from the sources when scraped. */
  private coordinatedMetrics (registers: Registry[]): void {
    const self = this
    // Counters read from the jobs when scraped: each moves by what its source grew since the last scrape.
    const read = (pick: (t: ReturnType<MetricSources['totals']>) => number) => {
      let last = 0
      return function (this: Counter): void {
        const totals = self.sources?.totals()
        const now = totals !== undefined ? pick(totals) : 0
        if (now > last) this.inc(now - last)
        last = Math.max(last, now)
      }
    }
    new Counter({ name: 'tileswarm_coordinated_units_total', help: 'Tiles (of every phase) and batch images finished (a batch image that failed counts) in jobs coordinated here', registers, collect: read(t => t.units) })
    for (const event of ['granted', 'expired', 'released'] as const) {
      new Counter({ name: `tileswarm_leases_${event}_total`, help: `Leases ${event} by jobs coordinated here`, registers, collect: read(t => t[event]) })
    }
    new Counter({ name: 'tileswarm_bytes_in_total', help: 'Bytes of images clients uploaded to jobs coordinated here', registers, collect: read(t => t.bytesIn) })
    new Counter({ name: 'tileswarm_bytes_out_total', help: 'Bytes of results sent to clients of jobs coordinated here', registers, collect: read(t => t.bytesOut) })
    new Counter({ name: 'tileswarm_verified_tiles_total', help: 'Tiles of jobs coordinated here whose result a second computation confirmed (spot checks, --verify)', registers, collect: read(t => t.checked) })
    new Counter({ name: 'tileswarm_verify_disagreements_total', help: 'Checks of jobs coordinated here whose computations disagreed (a third settles it)', registers, collect: read(t => t.disagreements) })
    new Counter({ name: 'tileswarm_verify_extra_units_total', help: 'Computations past one a tile in jobs coordinated here: checks, tie-breaks, a liar\'s tiles redone', registers, collect: read(t => t.extra) })
    new Counter({ name: 'tileswarm_peers_excluded_total', help: 'Peers excluded from jobs coordinated here: a result of theirs lost a vote, now or in an earlier job', registers, collect: read(t => t.excluded) })
    const gauge = (name: string, help: string, value: (s: MetricSources) => number): void => { this.gauge(registers, name, help, value) }
    gauge('tileswarm_peers_connected', 'Peers of the swarm connected to this one', s => s.peersConnected())
    gauge('tileswarm_libp2p_connections', 'libp2p connections open (peers and clients)', s => s.connections())
    gauge('tileswarm_jobs_active', 'Jobs coordinated here now', s => s.activeJobs())
    gauge('tileswarm_worker_leases_held', 'Leases this peer\'s worker holds now', s => s.heldLeases())
    gauge('tileswarm_result_cache_bytes', 'Results kept for other coordinators\' jobs', s => s.cachedResultBytes())
  }

  /** The scale hooks' backlog and decisions, on a peer with --scale-out or --scale-in. */
  private scalingMetrics (registers: Registry[]): void {
    const self = this
    const gauge = (name: string, help: string, value: (s: MetricSources) => number): void => { this.gauge(registers, name, help, value) }
    gauge('tileswarm_backlog_units', 'Units (tiles, images) not yet done in the jobs this peer knows of (with scale hooks)', s => s.scaling()?.backlog().remaining ?? 0)
    gauge('tileswarm_backlog_drain_seconds', 'Time to drain the backlog at the rate it is being done (-1: not known yet; with scale hooks)', s => s.scaling()?.backlog().drainS ?? -1)
    gauge('tileswarm_scaled_peers', 'Peers in the swarm that this peer\'s scale-out hook started', s => s.scaling()?.ours().length ?? 0)
    const decided = new Map<string, number>()
    new Counter({
      name: 'tileswarm_scale_decisions_total',
      help: 'Scale hooks run by this peer, by direction (out, in) and outcome (done, failed, timed out)',
      labelNames: ['direction', 'outcome'],
      registers,
      collect () {
        for (const [key, n] of self.sources?.scaling()?.totals ?? []) {
          const [direction, ...outcome] = key.split(' ')
          const grew = n - (decided.get(key) ?? 0)
          if (grew > 0) this.inc({ direction, outcome: outcome.join(' ') }, grew)
          decided.set(key, n)
        }
      },
    })
  }

  /** A gauge set from the sources when scraped. */
  private gauge (registers: Registry[], name: string, help: string, value: (s: MetricSources) => number): void {
    const self = this
    new Gauge({ name, help, registers, collect () { if (self.sources !== undefined) this.set(value(self.sources)) } })
  }

  private readonly onEnded = (evt: Event): void => {
    const { job, outcome, ms } = (evt as CustomEvent<JobEnded>).detail
    this.ended(job, outcome, ms)
  }

  async start (): Promise<void> {
    this.events?.addEventListener('ended', this.onEnded)
  }

  async stop (): Promise<void> {
    this.events?.removeEventListener('ended', this.onEnded)
  }

  /** The process's own (CPU, memory, event loop): once per process, by whoever serves /metrics. */
  addProcessMetrics (): void {
    if (this.processMetrics) return
    this.processMetrics = true
    collectDefaultMetrics({ register: this.registry, prefix: 'tileswarm_' })
  }

  watch (sources: MetricSources): void {
    this.sources = sources
  }

  computed (kind: 'tile' | 'image', ms: number): void {
    this.unitsComputed.inc({ kind })
    this.unitSeconds.observe({ kind }, ms / 1000)
  }

  ended (job: HostedJob, outcome: JobOutcome, ms: number): void {
    this.jobsEnded.inc({ kind: job.kind, outcome })
    this.jobSeconds.observe({ kind: job.kind }, ms / 1000)
  }
}
