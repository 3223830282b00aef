import type { Clock } from '../common/clock.ts'
import { VERSION } from '../common/version.ts'
import type { HostedJob } from '../job/host.ts'
import { MAX_STATUS_JOBS, MAX_STATUS_PEERS, PROTOCOL_VERSION } from '../protocol/constants.ts'
import type { JobView, PeerView, ScalingView, SwarmStatus } from '../protocol/messages.ts'

/** What a peer's status is read from, when asked. */
export interface StatusSources {
  peerId: string
  clock: Clock
  /** When the peer started, on `clock`. */
  startedAt: number
  slots: number
  addrs: () => string[]
  /** Tiles and images its worker has done, and leases it holds now. */
  done: () => number
  heldLeases: () => number
  activeJobs: () => number
  /** The jobs coordinated here. */
  hosted: () => HostedJob[]
  /** Jobs other peers announce. */
  announced: () => JobView[]
  peers: () => PeerView[]
  scaling: () => ScalingView | undefined
}

/** The swarm as a peer sees it (`tileswarm status`, the dashboard): itself, its peers, the jobs it coordinates and those others announce. */
export function peerStatus (s: StatusSources): SwarmStatus {
  const now = s.clock.now()
  const here: JobView[] = s.hosted().map(j => ({
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
  }))
  const scaling = s.scaling()
  return {
    v: PROTOCOL_VERSION,
    peerId: s.peerId,
    addrs: s.addrs(),
    version: VERSION,
    slots: s.slots,
    upS: Math.round((now - s.startedAt) / 1000),
    done: s.done(),
    heldLeases: s.heldLeases(),
    activeJobs: s.activeJobs(),
    peers: s.peers().slice(0, MAX_STATUS_PEERS),
    jobs: [...here, ...s.announced()].slice(0, MAX_STATUS_JOBS),
    ...(scaling !== undefined ? { scaling } : {}),
  }
}
