import type { Libp2p } from 'libp2p'
import type { Clock } from '../common/clock.ts'
import { WATCH_POLL_MS } from '../common/defaults.ts'
import { CancelRefusedError, JobCancelledError, JobFailedError, UnknownJobError } from '../common/errors.ts'
import { shortId } from '../common/log.ts'
import type { FinishedJobView, JobView, SwarmStatus } from '../protocol/messages.ts'
import { fetchStatus, requestCancel } from '../swarm/status.ts'
import type { WatchEvent } from './progress.ts'

/** How a command reaches the swarm: the peer asked (`--peer`), and what dials need. */
export interface JobsConnection {
  node: Libp2p
  /** The peer asked, with its /p2p/ id. */
  peer: string
  swarmKey?: Uint8Array
  dialTimeoutMs?: number
}

/** A job as the peer asked knows of it: running (anywhere it has heard of), or ended there in the last hour. */
export type FoundJob = { running: JobView, finished?: undefined } | { running?: undefined, finished: FinishedJobView }

export function findJob (status: SwarmStatus, jobId: string): FoundJob | undefined {
  const running = status.jobs.find(j => j.jobId === jobId)
  if (running !== undefined) return { running }
  const finished = status.finished?.find(j => j.jobId === jobId)
  return finished !== undefined ? { finished } : undefined
}

/** The job running as `status` knows it; one that ended, or is not known (`unknown` says so), refused in one line. */
export function runningJob (status: SwarmStatus, jobId: string, unknown: string): JobView {
  const found = findJob(status, jobId)
  if (found?.finished !== undefined) throw new UnknownJobError(`job ${jobId} has ended already (${found.finished.outcome})`)
  if (found === undefined) throw new UnknownJobError(unknown)
  return found.running
}

/** Where to reach a job's coordinator: the peer asked, if it is; else the addresses its announcements gave, and those the peer asked has of it. */
export function coordinatorAddresses (status: SwarmStatus, asked: string, coordinator: string): string[] {
  if (coordinator === status.peerId) return [asked]
  const announced = status.jobs.find(j => j.coordinator === coordinator && j.coordinatorAddrs !== undefined)?.coordinatorAddrs ?? []
  const known = status.peers.find(p => p.peerId === coordinator)?.addrs ?? []
  return [...new Set([...announced, ...known].map(a => a.includes('/p2p/') ? a : `${a}/p2p/${coordinator}`))]
}

/** The swarm's jobs as the peer asked sees them, with its coordinators' own figures, and those ended there in the last hour. */
export async function listJobs (c: JobsConnection): Promise<SwarmStatus> {
  return await fetchStatus(c.node, c.peer, { ...dialOptions(c), detail: true })
}

/**
 * Asks the job's coordinator to cancel it, as this node's identity (the
 * submitter's, with the same --data-dir) or as the operator (`token`). The
 * coordinator is found through the peer asked.
 */
export async function cancelJob (c: JobsConnection, jobId: string, options: { token?: string } = {}): Promise<{ coordinator: string }> {
  const status = await fetchStatus(c.node, c.peer, dialOptions(c))
  const { coordinator } = runningJob(status, jobId, `no job ${jobId} is known to the peer at ${c.peer} (tileswarm jobs lists those it knows)`)
  await onCoordinator(status, c, coordinator, async addr => { await requestCancel(c.node, addr, jobId, { ...dialOptions(c), ...options }) })
  return { coordinator }
}

/**
 * Follows a job to its end on its coordinator: 'watching' once, 'progress'
 * as it changes, 'ended' with its outcome. A job that failed or was
 * cancelled throws after its 'ended' (the command exits non-zero).
 */
export async function watchJob (c: JobsConnection, jobId: string, options: { clock: Clock, onEvent: (event: WatchEvent) => void, pollMs?: number }): Promise<FinishedJobView> {
  const status = await fetchStatus(c.node, c.peer, dialOptions(c))
  const found = findJob(status, jobId)
  if (found === undefined) throw new UnknownJobError(`no job ${jobId} is known to the peer at ${c.peer} (tileswarm jobs lists those it knows)`)
  const coordinator = found.running?.coordinator ?? status.peerId
  const addrs = coordinatorAddresses(status, c.peer, coordinator)
  let last = ''
  let started = false
  for (;;) {
    const now = await onCoordinator(status, c, coordinator, async addr => await fetchStatus(c.node, addr, dialOptions(c)), addrs)
    const job = findJob(now, jobId)
    if (job === undefined) throw new UnknownJobError(`job ${jobId} is no longer known to its coordinator ${shortId(coordinator)}`)
    if (job.running !== undefined) {
      const r = job.running
      if (!started) options.onEvent({ event: 'watching', jobId, kind: r.kind, coordinator, done: r.done, total: r.total })
      started = true
      const workers = Object.values(r.byPeer ?? {}).filter(n => n > 0).length
      const key = `${r.done}/${r.total}/${workers}`
      if (key !== last) options.onEvent({ event: 'progress', done: r.done, total: r.total, workers })
      last = key
    } else {
      const f = job.finished
      options.onEvent({ event: 'ended', jobId, outcome: f.outcome, ms: f.ms })
      if (f.outcome === 'cancelled') throw new JobCancelledError(`job ${jobId} was cancelled`)
      if (f.outcome === 'failed') throw new JobFailedError(`job ${jobId} failed on its coordinator ${shortId(coordinator)} (its log says why)`)
      return f
    }
    await new Promise<void>(resolve => { options.clock.setTimeout(resolve, options.pollMs ?? WATCH_POLL_MS) })
  }
}

/** `ask` of the coordinator at each of its addresses in turn; the first that answers. */
async function onCoordinator<T> (status: SwarmStatus, c: JobsConnection, coordinator: string, ask: (addr: string) => Promise<T>, given?: string[]): Promise<T> {
  const addrs = given ?? coordinatorAddresses(status, c.peer, coordinator)
  if (addrs.length === 0) throw new UnknownJobError(`the job's coordinator ${shortId(coordinator)} is not among the peers the peer at ${c.peer} knows addresses of; ask it directly (--peer)`)
  return await firstAnswer(addrs, ask)
}

/** `ask` at each of a coordinator's addresses in turn: the first answer. A refusal is its answer; only an unreachable address is worth trying the next. */
export async function firstAnswer<T> (addrs: readonly string[], ask: (addr: string) => Promise<T>): Promise<T> {
  let firstError: unknown
  for (const addr of addrs) {
    try {
      return await ask(addr)
    } catch (err) {
      if (err instanceof UnknownJobError || err instanceof CancelRefusedError) throw err
      firstError ??= err
    }
  }
  throw firstError
}

function dialOptions (c: JobsConnection): { dialTimeoutMs?: number, swarmKey?: Uint8Array } {
  return { ...(c.dialTimeoutMs !== undefined ? { dialTimeoutMs: c.dialTimeoutMs } : {}), ...(c.swarmKey !== undefined ? { swarmKey: c.swarmKey } : {}) }
}
