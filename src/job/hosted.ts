import type { Clock } from '../common/clock.ts'
import type { JobCancelledError } from '../common/errors.ts'
import type { Log } from '../common/log.ts'
import type { JobRef } from '../protocol/job-ref.ts'
import type { JobsTopicMessage } from '../protocol/messages.ts'
import type { Priority } from '../protocol/constants.ts'
import type { BatchCoordinator } from './batch.ts'
import type { JobCoordinator } from './coordinator.ts'
import type { CostModel } from './costs.ts'
import type { InputStore } from './inputs.ts'
import type { SwarmView } from './spread.ts'
import type { SpreadPolicy } from './spread-policy.ts'
import type { TrustRecords } from './verify.ts'

/** What a peer gives the jobs it coordinates, tiled jobs and batches alike. */
export interface JobHostComponents {
  peerId: string
  /** What jobs cost here, per pixel: whether a job is worth spreading is weighed from it. */
  costs: CostModel
  /** This peer's slots and cores, and its connected peers' slots (and whether they are on this machine). */
  swarm: () => SwarmView
  spread: SpreadPolicy
  /** Peers of the swarm connected now: none, and a job runs on this peer alone (the client is told). */
  connectedPeers: () => number
  clock: Clock
  log: Log
  publish: (message: JobsTopicMessage) => Promise<void>
  /** This peer's addresses, for announcements: workers dial the coordinator directly. */
  addrs: () => string[]
  tiles: { register: (job: JobCoordinator | BatchCoordinator) => void, unregister: (jobId: string) => void }
  worker: {
    addJob: (ref: JobRef) => void
    jobFinished: (jobId: string) => void
    /** Where a leaving coordinator keeps the tiles its own worker finished, for the job's next coordinator (absent: they go with it). */
    handOver?: { keep: (jobKey: string, tiles: Array<{ tile: number, checksum: string, data: Buffer }>, waitMs: number) => void, settled: () => Promise<void> } | undefined
  }
  /** Input files by digest, and their decoded pixels: the job's input is decoded here, once, and its tiles cut from it. */
  inputs: InputStore
  /** Gets 'job' (detail: the JobCoordinator) when a job starts here, 'batch' (the BatchCoordinator) when a batch does. */
  events: EventTarget
  /** Peers this one knows, with their addresses: where a client may resume if this peer goes. */
  swarmPeers: (limit: number) => Promise<Array<{ peerId: string, addrs: string[] }>>
  /** Connects to a peer (a holder of a resumed job's tiles, so it hears of the job); failures are its own business. */
  reach: (peer: { peerId: string, addrs: string[] }) => Promise<void>
  /** What this peer has seen of others' results in the jobs it coordinated: who is checked how much, who was caught. */
  trust: TrustRecords
}

export interface JobLimits {
  maxPixels: number
  maxTiles: number
  leaseMs: number
  parkMs?: number
  announceMs?: number
  /** Decoded inputs of the jobs coordinated here, at most: a job past it is refused, and its client tries another peer. */
  inputMemoryBytes?: number
}

export type JobOutcome = 'done' | 'failed' | 'cancelled'

/** Who sent a job here and how urgent it is: workers share their lanes by submitter, then by job, each weighted by priority. */
export interface Submission {
  /** The submitting client's peer id (the connection's). */
  client: string
  /** Whose the job is in the shares: the client, or `web:` and this peer for the web page's jobs. */
  submitter: string
  priority: Priority
}

/** A job coordinated here, as `tileswarm status`, the dashboard and the metrics see it. */
export interface HostedJob {
  jobId: string
  kind: 'tiles' | 'batch'
  /** The submitting client's peer id. */
  client: string
  /** The pipeline's operations, by name. */
  ops: string[]
  /** The input file's name, if the client said it. */
  name?: string
  /** Whose it is in the shares, and its priority. */
  submitter: string
  priority: Priority
  startedAt: number
  /** Where it is: decoding, tiles (or a batch's images), encoding, sending. */
  phase: string
  /** Units (tiles of every phase, or images) finished, of all. */
  done: number
  total: number
  byPeer: Record<string, number>
  /** Units waiting for a peer to take them now (not under lease). */
  pending: number
  leases: { granted: number, expired: number, released: number }
  bytesIn: number
  bytesOut: number
  /** Tiles settled by a second computation, votes lost, computations past one a tile, peers excluded. */
  verify: { checked: number, disagreements: number, extra: number, excluded: number }
}

/** What a job coordinated here is doing now: none yet while its upload is read. */
export interface Hosted {
  readonly jobId: string
  status: () => HostedJob
  leave: (reason: Error) => void
  /** Its submitter or the operator ends it: its leases are released, its client told, nothing written. */
  cancel: (reason: JobCancelledError) => void
}
