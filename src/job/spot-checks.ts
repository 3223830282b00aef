import { repeat, type Clock } from '../common/clock.ts'
import { JobFailedError } from '../common/errors.ts'
import type { LeaseTable } from './leases.ts'
import { CHECK_WAIT_MS, MAX_VOTES, resultDigest, secureRandom, type TrustRecords } from './verify.ts'
import type { VerifyFigures, VerifyLevel } from '../protocol/verify-level.ts'

/** Why a peer was excluded: the tile that caught it (none if caught in another job), the tiles redone, or the phase started over. */
export interface Exclusion {
  tile?: number
  redo: number
  restartPhase?: number
}

/** What the spot checker asks of the job whose results it checks. */
export interface CheckedJob {
  readonly isRunning: boolean
  /** The current phase (0-based) and its count of tiles. */
  readonly phase: number
  readonly tileCount: number
  /** The current phase's results are summaries, reduced once the phase is done (held under check, not placed). */
  readonly summarising: boolean
  /** The current phase's leases: an extra computation is a unit past its tiles. */
  readonly leases: LeaseTable
  /** Units came into existence: waiting claims should hear. */
  wake: () => void
  /** A result into the output (pixels) or the phase's reduction; `owned`: a copy nobody else holds. */
  take: (tile: number, body: Uint8Array, options?: { owned?: boolean }) => void
  /** `peer`'s result is the tile's in the output. */
  credit: (tile: number, peer: string) => void
  fail: (reason: Error) => void
  /** As if `peer` were gone: its leases back. */
  peerGone: (peer: string) => void
  /** The phases from `phase` on start over. */
  restartFrom: (phase: number) => void
  /** Checks were settled or given up: the phase may be done. */
  settled: () => void
  verified: (figures: VerifyFigures) => void
  excluded: (peer: string, why: Exclusion) => void
}

export interface SpotCheckOptions {
  level: VerifyLevel
  records: TrustRecords
  /** Picks the results checked; the system's CSPRNG if unset. */
  random?: () => number
}

/** A tile under check this phase: who computed it and what they got; which result is in the output (or held for the reduction). */
interface OpenCheck {
  votes: Array<{ peer: string, digest: string | undefined }>
  /** The peer whose result is under check (its record counts the check as pending). */
  checking?: string
  /** The computation asked for now, and since when. */
  unit?: number
  openedAt?: number
  shown?: string
  held?: Buffer
}

/**
 * Spot checks of one job's results: which are computed twice, the votes on
 * them, and the peers whose results lose (excluded from the job, their work
 * on their word alone done again). The job's own worker is never checked.
 */
export class SpotChecker {
  readonly figures: VerifyFigures = { checked: 0, disagreements: 0, extra: 0, replaced: 0, skipped: 0, excluded: {} }
  private readonly job: CheckedJob
  private readonly self: string | undefined
  private readonly clock: Clock
  private readonly level: VerifyLevel
  private readonly records: TrustRecords | undefined
  private readonly random: () => number
  /** This phase's tiles under check. */
  private readonly checks = new Map<number, OpenCheck>()
  /** This phase's units past its tiles (checks, tie-breaks, redone tiles): the tile each computes. */
  private extraTiles: number[] = []
  /** This phase's tiles taken on one peer's word alone (never this peer's own worker's), and whose. */
  private onWord = new Map<number, string>()
  /** Per summary phase, the peers whose summaries were reduced on their word alone. */
  private readonly reducedOnWord: Array<Set<string>> = []
  /** Peers excluded from this job: caught here, or in another job here. */
  private readonly excluded = new Set<string>()
  private readonly stopHearing: (() => void) | undefined
  private readonly stopSweeping: (() => void) | undefined

  constructor (job: CheckedJob, options: { self: string | undefined, clock: Clock, verify: SpotCheckOptions | undefined }) {
    this.job = job
    this.self = options.self
    this.clock = options.clock
    this.level = options.verify?.level ?? 'off'
    this.records = options.verify?.records
    this.random = options.verify?.random ?? secureRandom
    // Caught in another job here while this one runs: excluded here too, its work here redone.
    this.stopHearing = this.records?.onCaught(peer => { if (this.job.isRunning && !this.excluded.has(peer)) this.exclude(peer) })
    if (this.records !== undefined && this.level !== 'off') this.stopSweeping = repeat(this.clock, CHECK_WAIT_MS / 10, () => { this.giveUpChecks() })
  }

  /** Units a phase of `tiles` needs past its tiles, for checks, tie-breaks and redone tiles. */
  extraRoom (tiles: number): number {
    return this.level === 'off' ? 0 : 3 * tiles + 16
  }

  /** No check is open: the phase may end. */
  get idle (): boolean { return this.checks.size === 0 }

  /** The tile a unit of the current phase's table computes: its own, or the one an extra computation checks. */
  tileOf (unit: number): number {
    return unit < this.job.tileCount ? unit : this.extraTiles[unit - this.job.tileCount]!
  }

  /** A check of a tile goes to a peer that has not computed it. */
  refuses (peer: string, unit: number): boolean {
    return unit >= this.job.tileCount && this.checks.get(this.tileOf(unit))?.votes.some(v => v.peer === peer) === true
  }

  /** Excluded from this job, or caught before this job began (in another here): excluded now. */
  excludes (peer: string): boolean {
    if (this.excluded.has(peer)) return true
    if (this.records?.caught(peer) !== true) return false
    this.exclude(peer)
    return true
  }

  /**
   * A tile's first result this phase, or the first since every earlier one
   * came from peers now excluded: taken, and checked if the draw says so
   * (the coordinator's own worker is never checked). Pixels go into the
   * output at once and are replaced if they lose a vote; a summary under
   * check is held until its vote settles.
   */
  first (tile: number, peer: string, body: Uint8Array): void {
    this.firstOf(tile, peer, body, { votes: [] })
  }

  private firstOf (tile: number, peer: string, body: Uint8Array, open: OpenCheck): void {
    if (open.votes.length > 0) {
      this.figures.replaced++
      this.job.credit(tile, peer)
    }
    this.dropCheck(tile, open)
    const checked = peer !== this.self && this.records !== undefined && this.random() < this.records.share(peer, this.level)
    if (!checked) {
      this.job.take(tile, body)
      if (peer !== this.self) this.takenOnWord(tile, peer)
      return
    }
    const digest = resultDigest(body)
    open.votes.push({ peer, digest })
    open.shown = digest
    open.checking = peer
    this.records!.of(peer).pending++
    if (this.job.summarising) open.held = Buffer.from(body)
    else this.job.take(tile, body)
    this.checks.set(tile, open)
    this.openExtra(tile)
  }

  /** A further computation of a tile under check: two that agree settle it (or this peer's own word); else one more is asked for. */
  extra (tile: number, peer: string, body: Uint8Array): void {
    this.figures.extra++
    const open = this.checks.get(tile)
    if (open === undefined) return
    // Never granted (a check is refused to its voters): asked again rather than left open.
    if (open.votes.some(v => v.peer === peer)) return this.openExtra(tile)
    const live = this.liveVotes(open)
    if (live.length === 0) return this.firstOf(tile, peer, body, open)
    const digest = resultDigest(body)
    open.votes.push({ peer, digest })
    const agrees = live.some(v => v.digest === digest)
    if (!agrees) this.figures.disagreements++
    if (peer === this.self || agrees) return this.decide(tile, open, digest, body)
    this.job.verified(this.figures)
    const computed = live.length + 1
    if (computed >= MAX_VOTES) {
      this.job.fail(new JobFailedError(`tile ${tile} of phase ${this.job.phase + 1}: ${computed} peers computed it and no two agree`))
      return
    }
    this.openExtra(tile)
  }

  /** A new phase (or the same, started over): no check of the last carries over. */
  newPhase (): void {
    this.dropChecks()
    this.extraTiles = []
    this.onWord = new Map()
  }

  /** The job is over: no check stays pending on a peer's record, nothing more is heard or swept. */
  stop (): void {
    this.stopHearing?.()
    this.stopSweeping?.()
    this.dropChecks()
  }

  /** The vote is won by `digest` (whose bytes `body` are): the output has them, and every peer that said otherwise is excluded. */
  private decide (tile: number, open: OpenCheck, digest: string, body: Uint8Array): void {
    this.dropCheck(tile, open)
    this.figures.checked++
    if (this.job.summarising) {
      const held = open.shown === digest ? open.held : undefined
      this.job.take(tile, held ?? body, { owned: held !== undefined })
    } else if (open.shown !== digest) {
      this.job.take(tile, body)
      this.figures.replaced++
    }
    if (open.shown !== digest) this.job.credit(tile, open.votes.at(-1)!.peer)
    for (const v of open.votes) if (v.digest === digest) this.records!.of(v.peer).agreed++
    for (const v of open.votes) if (v.digest !== digest && v.digest !== undefined) this.convict(v.peer, tile)
    this.job.verified(this.figures)
  }

  /**
   * A peer's result lost a vote: it is excluded for the job (and kept on
   * record), its leases go back, and what it delivered on its word alone is
   * done again. A summary of its in a reduction taints every phase after:
   * those start over from the first such phase.
   */
  private convict (peer: string, tile: number): void {
    const excluded = this.figures.excluded
    excluded[peer] = (excluded[peer] ?? 0) + 1
    if (!this.excluded.has(peer)) this.exclude(peer, tile)
    // Every other job here hears of it too.
    this.records!.convict(peer)
  }

  /**
   * `peer` gets no more of this job: its leases go back, and what it
   * delivered on its word alone is done again (`tile`: the one that caught
   * it here; none if it was caught in another job).
   */
  private exclude (peer: string, tile?: number): void {
    this.excluded.add(peer)
    this.figures.excluded[peer] ??= 0
    // As if gone: its leases back.
    this.job.peerGone(peer)
    const caughtBy = tile !== undefined ? { tile } : {}
    const tainted = this.reducedOnWord.findIndex(peers => peers?.has(peer) === true)
    if (tainted >= 0) {
      this.job.excluded(peer, { ...caughtBy, redo: 0, restartPhase: tainted })
      this.reducedOnWord.length = tainted
      this.job.restartFrom(tainted)
      return
    }
    let redo = 0
    for (const [t, by] of this.onWord) {
      if (by !== peer) continue
      this.onWord.delete(t)
      this.checks.set(t, { votes: [{ peer, digest: undefined }] })
      this.openExtra(t)
      redo++
    }
    this.job.excluded(peer, { ...caughtBy, redo })
  }

  /**
   * Checks no peer has taken for CHECK_WAIT_MS (and two leases): every peer
   * working on the job computed the tile already, or none is left. One
   * result alone is taken on its word (and said so); two that disagree with
   * no third to settle them fail the job. A tile redone after its only
   * computer was excluded waits for any peer, as any tile does.
   */
  private giveUpChecks (): void {
    if (!this.job.isRunning) return
    const now = this.clock.now()
    const { leases } = this.job
    const waitMs = Math.max(CHECK_WAIT_MS, 2 * leases.leaseMs)
    for (const [tile, open] of [...this.checks]) {
      if (open.unit === undefined || now - (open.openedAt ?? now) < waitMs || leases.wasLeased(open.unit) || leases.isDone(open.unit)) continue
      const live = this.liveVotes(open)
      // No result of a peer still in the job is in the output (or held): that tile waits for any peer, as any tile does.
      if (live.length === 0 || (live.length === 1 && live[0]!.digest !== open.shown)) continue
      if (live.length > 1) {
        this.job.fail(new JobFailedError(`tile ${tile} of phase ${this.job.phase + 1}: ${live.length} peers computed it and disagree, and no other peer took it within ${Math.round(waitMs / 1000)} s to settle it`))
        return
      }
      leases.abandon(open.unit)
      this.dropCheck(tile, open)
      if (this.job.summarising) this.job.take(tile, open.held!, { owned: true })
      this.takenOnWord(tile, live[0]!.peer)
      this.figures.skipped++
      this.job.verified(this.figures)
    }
    this.job.settled()
  }

  /** The results of a tile under check from peers still in the job (an excluded peer's, or a redone tile's placeholder, count for nothing). */
  private liveVotes (open: OpenCheck): OpenCheck['votes'] {
    return open.votes.filter(v => v.digest !== undefined && !this.excludes(v.peer))
  }

  /** One peer's result stands unchecked: if that peer is caught, the tile is done again (and a summary taints its phase's reduction). */
  private takenOnWord (tile: number, peer: string): void {
    this.onWord.set(tile, peer)
    if (this.job.summarising) (this.reducedOnWord[this.job.phase] ??= new Set()).add(peer)
  }

  /** A check is over, decided or not: its peer's record no longer counts it as under way. */
  private dropCheck (tile: number, open: OpenCheck): void {
    this.checks.delete(tile)
    if (open.checking !== undefined) this.records!.of(open.checking).pending--
    open.checking = undefined
  }

  private dropChecks (): void {
    for (const [tile, open] of this.checks) this.dropCheck(tile, open)
  }

  /** One more computation of `tile`, claimed before fresh tiles (a liar is caught sooner). */
  private openExtra (tile: number): void {
    if (!this.job.isRunning) return
    const { leases, tileCount } = this.job
    let unit: number
    try {
      unit = leases.open({ first: true })
    } catch {
      this.job.fail(new JobFailedError(`phase ${this.job.phase + 1} needed more checks than ${leases.tileCount - tileCount}: too many peers disagree`))
      return
    }
    this.extraTiles[unit - tileCount] = tile
    const open = this.checks.get(tile)
    if (open !== undefined) {
      open.unit = unit
      open.openedAt = this.clock.now()
    }
    this.job.wake()
  }
}
