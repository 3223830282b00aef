import { createHash, randomInt } from 'node:crypto'
import type { VerifyLevel } from '../protocol/verify-level.ts'

/** A check no peer has taken this long (and at least two leases) is given up: no other peer can compute it. */
export const CHECK_WAIT_MS = 10_000

/** Computations of one tile that may all disagree before the job fails: nobody can be told right from wrong. */
export const MAX_VOTES = 4

/** A peer with this many checks passed has its share halved once more. */
const HALVE_EVERY = 4
/** A peer's share once its first check has passed. */
const SECOND_SHARE = 0.5

export interface PeerRecord {
  /** Checks its results passed. */
  agreed: number
  /** Its results under check now: counted as passed until they are decided, so a burst of results (a resumed job's offers) is not all checked. */
  pending: number
  /** Results of its that lost a vote. */
  wrong: number
}

/**
 * What this peer has seen of other peers' results, as the coordinator of
 * their jobs: kept while it runs, never gossiped (a liar could slander).
 * A peer once caught is given no work here again.
 */
export class TrustRecords {
  private readonly peers = new Map<string, PeerRecord>()
  /** Every running job here hears at once of a peer caught in any of them. */
  private readonly listeners = new Set<(peer: string) => void>()

  /** `listener` hears of each peer caught from now on; the returned function ends that. */
  onCaught (listener: (peer: string) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** A result of `peer`'s lost a vote: on record, and every job here is told (the first time). */
  convict (peer: string): void {
    const record = this.of(peer)
    record.wrong++
    if (record.wrong === 1) for (const l of [...this.listeners]) l(peer)
  }

  of (peer: string): PeerRecord {
    let record = this.peers.get(peer)
    if (record === undefined) this.peers.set(peer, record = { agreed: 0, pending: 0, wrong: 0 })
    return record
  }

  caught (peer: string): boolean {
    return (this.peers.get(peer)?.wrong ?? 0) > 0
  }

  /**
   * The share of a peer's results to check: its first, then half, halving
   * every HALVE_EVERY checks passed (or under way), down to the floor; all
   * for `all`, none for `off`.
   */
  share (peer: string, level: VerifyLevel): number {
    const record = this.peers.get(peer)
    return shareAt((record?.agreed ?? 0) + (record?.pending ?? 0), level)
  }

  /** The checks `tiles` more results of `peer` can expect, as its record stands: what spreading a job to it costs in extra computations. */
  expectedChecks (peer: string, level: VerifyLevel, tiles: number): number {
    const record = this.peers.get(peer)
    let agreed = (record?.agreed ?? 0) + (record?.pending ?? 0)
    let checks = 0
    for (let i = 0; i < tiles; i++) {
      const share = shareAt(agreed, level)
      checks += share
      agreed += share
    }
    return checks
  }

  get size (): number { return this.peers.size }
}

/** The share of a peer's results to check once `agreed` checks of its results have passed (or are under way). */
function shareAt (agreed: number, level: VerifyLevel): number {
  if (level === 'off') return 0
  if (level === 'all') return 1
  if (agreed === 0) return 1
  return Math.max(level, SECOND_SHARE * 2 ** (-(agreed - 1) / HALVE_EVERY))
}

/** A cryptographic digest: a liar that knows the right bytes could match a CRC with wrong ones. */
export function resultDigest (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Uniform in [0, 1) from the system's CSPRNG: which results are checked must not be guessable. */
export function secureRandom (): number {
  return randomInt(2 ** 47) / 2 ** 47
}
