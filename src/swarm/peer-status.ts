import type { Clock } from '../common/clock.ts'
import { VERSION } from '../common/version.ts'
import { MAX_STATUS_JOBS, MAX_STATUS_PEERS, PROTOCOL_VERSION } from '../protocol/constants.ts'
import type { JobView, SwarmStatus } from '../protocol/messages.ts'
import type { Worker } from '../worker/worker.ts'
import type { Discovery } from './discovery.ts'
import type { Scaler } from './scaler.ts'
import type { SwarmJobs } from './status.ts'
import type { SubmitService } from './submit-service.ts'

/** What a peer's status is read from, when asked: the peer's own figures, and its parts'. */
export interface StatusSources {
  peerId: string
  addrs: string[]
  slots: number
  clock: Clock
  /** When the peer started, on `clock`. */
  startedAt: number
  worker: Pick<Worker, 'computed' | 'heldLeases'>
  submissions: Pick<SubmitService, 'activeJobs' | 'jobs' | 'history'>
  swarmJobs: Pick<SwarmJobs, 'view'>
  discovery: Pick<Discovery, 'view'>
  scaler: Pick<Scaler, 'view'> | undefined
}

/** The swarm as a peer sees it (`tileswarm status`, the dashboard): itself, its peers, the jobs it coordinates and those others announce. */
export function peerStatus (s: StatusSources): SwarmStatus {
  const now = s.clock.now()
  const here: JobView[] = s.submissions.jobs().map(j => ({
    jobId: j.jobId,
    kind: j.kind,
    coordinator: s.peerId,
    here: true,
    phase: j.phase,
    done: j.done,
    total: j.total,
    ageS: Math.round((now - j.startedAt) / 1000),
    byPeer: j.byPeer,
    leases: j.leases,
    client: j.client,
    submitter: j.submitter,
    priority: j.priority,
    ops: j.ops,
    inputBytes: j.bytesIn,
    ...(j.name !== undefined ? { inputName: j.name } : {}),
  }))
  return {
    v: PROTOCOL_VERSION,
    peerId: s.peerId,
    addrs: s.addrs,
    version: VERSION,
    slots: s.slots,
    upS: Math.round((now - s.startedAt) / 1000),
    done: s.worker.computed,
    heldLeases: s.worker.heldLeases,
    activeJobs: s.submissions.activeJobs,
    peers: s.discovery.view().slice(0, MAX_STATUS_PEERS),
    jobs: [...here, ...s.swarmJobs.view()].slice(0, MAX_STATUS_JOBS),
    finished: s.submissions.history.view(),
    ...(s.scaler !== undefined ? { scaling: s.scaler.view() } : {}),
  }
}

/** This process's load, as its hellos say it: CPU in percent of one core since the last call, and resident memory. */
export function processLoad (): () => { cpu: number, rssBytes: number } {
  let last = { at: performance.now(), usage: process.cpuUsage() }
  return () => {
    const now = { at: performance.now(), usage: process.cpuUsage() }
    const usedUs = now.usage.user + now.usage.system - last.usage.user - last.usage.system
    const wallUs = (now.at - last.at) * 1000
    last = now
    return { cpu: wallUs > 0 ? Math.round(1000 * usedUs / wallUs) / 10 : 0, rssBytes: process.memoryUsage.rss() }
  }
}
