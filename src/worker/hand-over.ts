import type { Clock } from '../common/clock.ts'
import { oneLine } from '../common/errors.ts'
import type { JobRef } from '../protocol/job-ref.ts'
import { endSession, openSession, type SessionOptions } from './job-session.ts'
import type { ResultCache } from './result-cache.ts'

/** A tile a leaving coordinator's own worker finished: its pixels, to hand to the job's next coordinator. */
export interface OwnTile {
  tile: number
  checksum: string
  data: Buffer
}

/**
 * A leaving peer's last service to the jobs it coordinated: the tiles its own
 * worker finished (which lived only in its output) are kept like any
 * worker's results, and handed to each job's next coordinator, to which the
 * client names this peer a holder. Bounded: a coordinator not heard of in
 * time gets nothing, and the peer goes.
 */
export class HandOver {
  private readonly options: SessionOptions & { clock: Clock, cache: ResultCache }
  /** By job key: the next coordinator, once announced. */
  private readonly waiting = new Map<string, (ref: JobRef | undefined) => void>()
  private readonly running = new Set<Promise<void>>()

  constructor (options: SessionOptions & { clock: Clock, cache: ResultCache }) {
    this.options = options
  }

  /** Keeps `tiles` of the job `jobKey`, and hands them to its next coordinator if one is announced within `waitMs`. */
  keep (jobKey: string, tiles: OwnTile[], waitMs: number): void {
    const { cache, clock, log } = this.options
    for (const t of tiles) cache.put(jobKey, t.tile, t.checksum, t.data)
    const handing = (async () => {
      const ref = await new Promise<JobRef | undefined>(resolve => {
        const timer = clock.setTimeout(() => { resolve(undefined) }, waitMs)
        this.waiting.set(jobKey, next => { clock.clearTimeout(timer); resolve(next) })
      })
      this.waiting.delete(jobKey)
      if (ref === undefined) {
        log?.(`job ${jobKey.slice(0, 12)}: no next coordinator heard of (within ${waitMs} ms, while connected); the ${tiles.length} tiles this peer finished go with it`)
        return
      }
      // Joining offers what the coordinator reserved of what this peer holds; nothing more is done here.
      await endSession(await openSession(ref, this.options))
    })().catch((err: unknown) => { log?.(`handing over finished tiles failed: ${oneLine((err as Error).message)}`, 'warn') })
    this.running.add(handing)
    void handing.finally(() => this.running.delete(handing))
  }

  /** A job announced: true if it is the next coordinator of one this peer is handing over (it hears of the tiles). */
  heard (ref: JobRef): boolean {
    if (ref.jobKey === undefined || ref.coordinator === this.options.peerId) return false
    const next = this.waiting.get(ref.jobKey)
    next?.(ref)
    return next !== undefined
  }

  /** Nobody is left to take them (this peer has no connection): every wait ends now. */
  giveUp (): void {
    for (const next of [...this.waiting.values()]) next(undefined)
  }

  /** Every hand-over done, or given up. */
  async settled (): Promise<void> {
    await Promise.allSettled([...this.running])
  }
}
