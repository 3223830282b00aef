/**
 * The simulator's `shared` scenario: several submitters' jobs of mixed sizes
 * arriving over time on one swarm. Each job runs alone on the swarm first,
 * then all of them as the mix has them arrive; it reports each job's
 * slowdown (shared / alone), Jain's fairness index of the shares, and fails
 * unless every output equals its local reference.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseOps, resolvePipeline } from '../src/imaging/index.ts'
import type { VerifyLevel } from '../src/protocol/verify-level.ts'
import { Cluster } from './cluster.ts'
import { prng } from './model.ts'
import { jain, windowedFairness, type Backlog, type JobSpan, type WorkDone } from './shared-fairness.ts'
import { defaultMix, prepareInput, runJob, submitterKey, withPriorities, type JobInput, type JobRun, type RunContext, type SharedJobSpec } from './shared-jobs.ts'
import { BACKLOG_SAMPLE_MS, ComputeMeter } from './shared-meter.ts'

export interface SharedOptions {
  peers: number
  /** The big job's tiles; the small ones get a twentieth (at least 16). */
  tiles: number
  /** The batch's images (0: no batch). */
  images: number
  seed: number
  tileSize: number
  leaseMs: number
  nsPerPixel: number
  ops: string
  verify: VerifyLevel
  timeLimitS: number
  /** Each job runs alone this many times first; its time alone is their median. */
  aloneRuns: number
  /** `batch=high,small-1=low`: jobs of the mix given a priority (the rest normal). */
  priorities?: string
  json?: boolean
  logFor?: () => (line: string) => void
}

/** Windows of a twentieth of the big job's time alone, never under this. */
const MIN_WINDOW_MS = 100

const round = (n: number, digits = 3): number => Number(n.toFixed(digits))

function median (xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Runs the scenario, prints its report; the exit code (0: every output exact). */
export async function runShared (opts: SharedOptions): Promise<number> {
  const log = (line: string): void => { if (opts.json !== true) console.log(line) }
  const limit = setTimeout(() => {
    console.error(`FAILED: not done within the time limit of ${opts.timeLimitS} s`)
    process.exit(1)
  }, opts.timeLimitS * 1000)
  limit.unref()
  const mix = withPriorities(defaultMix({ tiles: opts.tiles, images: opts.images }), opts.priorities ?? '')
  const steps = resolvePipeline(parseOps(opts.ops))
  const submitters = [...new Set(mix.map(j => j.submitter))]
  log(`scenario shared: ${submitters.length} submitters, ${mix.length} jobs of mixed sizes arriving over time; each runs alone first, then all together`)
  log(`${opts.peers} peers, tiles of ${opts.tileSize} px, lease ${opts.leaseMs} ms, ${opts.nsPerPixel} ns/pixel simulated, seed ${opts.seed}; time limit ${opts.timeLimitS} s`)
  const dir = await mkdtemp(join(tmpdir(), 'tileswarm-shared-'))
  // Inputs of the same sizes for each run, seeded apart: no run gets results a worker kept from another.
  const inputs = async (run: number, specs: SharedJobSpec[]): Promise<JobInput[]> => await Promise.all(specs.map(async (spec, i) =>
    await prepareInput(spec, join(dir, `in-${run}-${i}`), { seed: opts.seed * 1009 + run * 16 + i + 1, tileSize: opts.tileSize, steps })))
  // One small job per submitter first, untimed: its entry peer's first job pays for connections the others then share.
  const warmUp = await inputs(0, submitters.map(s => ({ name: `warm-up-${s}`, submitter: s, arriveAt: 0, size: { kind: 'tiled', tiles: 16 } })))
  const together = await inputs(opts.aloneRuns + 1, mix)
  const cluster = await Cluster.start(opts.peers, { ...(opts.logFor !== undefined ? { logFor: opts.logFor } : {}), tileSize: opts.tileSize, leaseMs: opts.leaseMs, nsPerPixel: opts.nsPerPixel, heartbeatMs: 200, announceMs: 500, helloMs: 60_000, allowPriority: 'all' })
  cluster.seed(prng(opts.seed))
  const meter = new ComputeMeter(cluster, opts.nsPerPixel)
  const keys = new Map(await Promise.all(submitters.map(async s => [s, await submitterKey(s, opts.seed)] as const)))
  // Each submitter enters the swarm at a peer of its own.
  const context = (input: JobInput, out: string): RunContext => ({
    peer: cluster.peers[submitters.indexOf(input.spec.submitter) % cluster.peers.length]!.addrs()[0]!,
    key: keys.get(input.spec.submitter)!,
    steps,
    tileSize: opts.tileSize,
    verify: opts.verify,
    idleTimeoutMs: opts.timeLimitS * 1000,
    out,
  })
  const sequence = async (run: number, list: JobInput[]): Promise<JobRun[]> => {
    const runs: JobRun[] = []
    for (const [i, input] of list.entries()) runs.push(await runJob(input, context(input, join(dir, `out-${run}-${i}`))))
    return runs
  }
  const aloneRuns = await sequence(0, warmUp)
  // Each job alone, round after round; its time alone is the median of its rounds.
  const rounds: JobRun[][] = []
  for (let r = 1; r <= opts.aloneRuns; r++) {
    rounds.push(await sequence(r, await inputs(r, mix)))
    aloneRuns.push(...rounds.at(-1)!)
    log(`alone, round ${r}: ${mix.map((spec, i) => `${spec.name} ${(rounds.at(-1)![i]!.ms / 1000).toFixed(2)} s`).join(', ')}`)
  }
  const aloneMs = mix.map((_, i) => median(rounds.map(round => round[i]!.ms)))
  const shared = await runTogether(together, aloneMs[0]!, input => context(input, join(dir, `out-${opts.aloneRuns + 1}-${together.indexOf(input)}`)), meter)
  const failures = [...aloneRuns.flatMap(r => r.failures.map(f => `alone: ${f}`)), ...shared.runs.flatMap(r => r.failures.map(f => `shared: ${f}`))]
  const kept = shared.runs.reduce((n, r) => n + (r.jobId !== undefined ? meter.kept.get(r.jobId) ?? 0 : 0), 0)
  if (kept > 0) failures.push(`shared: ${kept} batch images came from a worker's cache, not computed`)
  const summary = summarise({ opts, inputs: together, aloneMs, shared, failures, windowMs: Math.max(MIN_WINDOW_MS, Math.round(aloneMs[0]! / 20)) })
  if (opts.json === true) console.log(JSON.stringify(summary))
  else printReport(summary, log)
  await cluster.stop()
  await rm(dir, { recursive: true, force: true })
  return failures.length === 0 ? 0 : 1
}

interface SharedRun {
  runs: JobRun[]
  /** Each job from its submission to its client's end. */
  spans: JobSpan[]
  /** Each job while it competed for the swarm: its coordinator took it on, its last unit not yet in. */
  competing: JobSpan[]
  /** The compute each job got, by the spec's name, ms from the run's start. */
  work: WorkDone[]
  /** Each job's units waiting at its coordinator, sampled, by the spec's name. */
  backlog: Backlog[]
  makespanMs: number
}

/** Every job submitted at its time (its fraction of the first job's time alone), all at once. */
async function runTogether (inputs: JobInput[], firstAloneMs: number, context: (input: JobInput) => RunContext, meter: ComputeMeter): Promise<SharedRun> {
  const origin = performance.now()
  const spans: JobSpan[] = []
  const runs = await Promise.all(inputs.map(async input => {
    await new Promise(resolve => setTimeout(resolve, input.spec.arriveAt * firstAloneMs))
    const startMs = performance.now() - origin
    const run = await runJob(input, context(input))
    spans.push({ job: input.spec.name, submitter: input.spec.submitter, ...(input.spec.priority !== undefined ? { priority: input.spec.priority } : {}), startMs, endMs: startMs + run.ms })
    return run
  }))
  const makespanMs = performance.now() - origin
  const work = inputs.flatMap((input, i) => {
    const id = runs[i]!.jobId
    return id === undefined ? [] : meter.of(id, origin).map(w => ({ ...w, job: input.spec.name }))
  })
  const backlog = inputs.flatMap((input, i) => {
    const id = runs[i]!.jobId
    return id === undefined ? [] : meter.backlogOf(id, origin).map(b => ({ ...b, job: input.spec.name }))
  })
  const competing = spans.flatMap(span => {
    const id = runs[inputs.findIndex(input => input.spec.name === span.job)]!.jobId
    const when = id === undefined ? undefined : meter.competing(id, origin)
    return when === undefined ? [] : [{ ...span, ...when }]
  })
  return { runs, spans, competing, work, backlog, makespanMs }
}

/** The report: each job's times and share, the fairness figures, the invariants. */
function summarise (m: { opts: SharedOptions, inputs: JobInput[], aloneMs: number[], shared: SharedRun, failures: string[], windowMs: number }) {
  const fair = windowedFairness(m.shared.competing, m.shared.work, m.windowMs, m.shared.backlog)
  const competing = windowedFairness(m.shared.competing, m.shared.work, m.windowMs)
  const bySpan = windowedFairness(m.shared.spans, m.shared.work, m.windowMs)
  const jobs = m.inputs.map((input, i) => {
    const span = m.shared.spans.find(s => s.job === input.spec.name)
    const share = competing.shares.get(input.spec.name)
    const sharedMs = m.shared.runs[i]!.ms
    const aloneMs = m.aloneMs[i]!
    return {
      name: input.spec.name,
      submitter: input.spec.submitter,
      priority: input.spec.priority ?? 'normal',
      size: input.spec.size,
      arriveS: round((span?.startMs ?? 0) / 1000),
      aloneS: round(aloneMs / 1000),
      sharedS: round(sharedMs / 1000),
      slowdown: round(sharedMs / aloneMs, 2),
      ...(share !== undefined ? { share: round(share.got), entitled: round(share.entitled), windows: share.windows } : {}),
    }
  })
  const computeMs = m.shared.work.reduce((a, w) => a + w.ms, 0)
  return {
    scenario: 'shared',
    seed: m.opts.seed,
    peers: m.opts.peers,
    aloneFrom: `the median of ${m.opts.aloneRuns} runs of each job alone on the same swarm first (inputs of the same size, seeded apart)`,
    jobs,
    makespanS: round(m.shared.makespanMs / 1000),
    /** The modelled compute the shared run's jobs got, over what the swarm's slots could give in its makespan. */
    utilisation: round(computeMs / (m.opts.peers * m.shared.makespanMs)),
    fairness: {
      definition: `Jain's index (sum x)^2 / (n sum x^2) over the jobs with units waiting at their coordinators throughout each window of ${m.windowMs} ms (two or more; counted every ${BACKLOG_SAMPLE_MS} ms), x = the job's share of their compute in it / its entitled share among them (submitters first, then a submitter's jobs; priority weights 4:2:1); the mean over windows`,
      windowMs: m.windowMs,
      windows: fair.windows,
      index: fair.index === undefined ? undefined : round(fair.index),
      worst: fair.worst === undefined ? undefined : round(fair.worst),
      /** The same over every job competing for the swarm (from its coordinator taking it on to its last unit in), units waiting or not: a job short of work counts as slighted. */
      competing: competing.index === undefined ? undefined : round(competing.index),
      competingWindows: competing.windows,
      /** The competing jobs' shares window by window (ms from the run's start), and which had units waiting throughout. */
      each: competing.each.map(w => ({ atS: round(w.atMs / 1000, 2), index: round(w.index), got: Object.fromEntries(Object.entries(w.got).map(([job, got]) => [job, round(got, 2)])), waiting: fair.each.find(f => f.atMs === w.atMs)?.got !== undefined ? Object.keys(fair.each.find(f => f.atMs === w.atMs)!.got) : [] })),
      /** The same over each job's whole span, submission to the client's end (upload, encode and the result's way back included, when a job has nothing for the swarm). */
      bySpan: bySpan.index === undefined ? undefined : round(bySpan.index),
    },
    /** Modelled compute (ms) each job got, second by second of the shared run: who had the swarm when. */
    timeline: timeline(m.shared.work),
    /** Jain's index of 1 / slowdown over every job: 1 when all are slowed alike. */
    slowdownFairness: round(jain(jobs.map(j => 1 / j.slowdown)) ?? 0),
    invariants: m.failures.length === 0 ? 'ok' as const : m.failures,
  }
}

/** The work done, summed per job over each second. */
function timeline (work: readonly WorkDone[]): Array<{ s: number, ms: Record<string, number> }> {
  const seconds = new Map<number, Record<string, number>>()
  for (const w of work) {
    const s = Math.floor(w.atMs / 1000)
    const row = seconds.get(s) ?? {}
    row[w.job] = (row[w.job] ?? 0) + w.ms
    seconds.set(s, row)
  }
  return [...seconds].sort((a, b) => a[0] - b[0]).map(([s, row]) => ({ s, ms: Object.fromEntries(Object.entries(row).map(([job, ms]) => [job, Math.round(ms)])) }))
}

type Summary = ReturnType<typeof summarise>

function printReport (s: Summary, log: (line: string) => void): void {
  log('job       submitter priority size          arrives   alone  shared slowdown  share (entitled)')
  for (const j of s.jobs) {
    const size = j.size.kind === 'tiled' ? `${j.size.tiles} tiles` : `${j.size.images} images`
    const share = j.share === undefined ? '-' : `${j.share.toFixed(2)} (${j.entitled!.toFixed(2)})`
    log(`${j.name.padEnd(9)} ${j.submitter.padEnd(9)} ${j.priority.padEnd(8)} ${size.padEnd(13)} ${j.arriveS.toFixed(2).padStart(6)} s ${j.aloneS.toFixed(2).padStart(6)} s ${j.sharedS.toFixed(2).padStart(6)} s ${j.slowdown.toFixed(2).padStart(7)}x  ${share}`)
  }
  log('compute by second of the shared run (modelled ms per job):')
  for (const row of s.timeline) log(`  ${String(row.s).padStart(3)} s  ${Object.entries(row.ms).map(([job, ms]) => `${job} ${ms}`).join(', ')}`)
  log(`all done in ${s.makespanS} s; the swarm's slots busy ${(s.utilisation * 100).toFixed(1)}% of it with the jobs' modelled compute`)
  log(`fairness index ${s.fairness.index?.toFixed(3) ?? 'n/a'} (worst window ${s.fairness.worst?.toFixed(3) ?? 'n/a'}, ${s.fairness.windows} windows): ${s.fairness.definition}`)
  log('window by window, the competing jobs\' shares of their compute (* : units waiting throughout):')
  for (const w of s.fairness.each) log(`  ${w.atS.toFixed(2).padStart(6)} s  index ${w.index.toFixed(2)}  ${Object.entries(w.got).map(([job, got]) => `${job}${w.waiting.includes(job) ? '*' : ''} ${got.toFixed(2)}`).join(', ')}`)
  log(`over every job competing for the swarm instead, units waiting or not (from its coordinator taking it on to its last unit in; ${s.fairness.competingWindows} windows): ${s.fairness.competing?.toFixed(3) ?? 'n/a'}`)
  log(`over each job's whole span instead (submission to its client's end): ${s.fairness.bySpan?.toFixed(3) ?? 'n/a'}`)
  log(`slowdown fairness ${s.slowdownFairness.toFixed(3)}: Jain's index of 1/slowdown over every job`)
  log(`invariants: ${s.invariants === 'ok' ? 'ok (every output equals its local reference, alone and shared)' : 'FAILED\n  ' + s.invariants.join('\n  ')}`)
}
