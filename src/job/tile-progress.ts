import type { Clock } from '../common/clock.ts'
import { MAX_PLACED_TOLD } from '../protocol/constants.ts'
import type { ClientProgress, ProgressMessage } from './client-progress.ts'

/** Tiles' progress reported at most this often: the last of a burst waits only for the rest of it. */
const TILE_PROGRESS_EVERY_MS = 100

export type TileCounts = Omit<ProgressMessage, 'type' | 'phase' | 'placed'>

/**
 * A tiled job's progress while its tiles land: the counts, with the tiles
 * placed since the client last heard, by who computed them (its tile map),
 * at most MAX_PLACED_TOLD to a message.
 */
export class TileProgress {
  private placed = new Map<string, number[]>()
  private placedCount = 0
  private trailing: unknown
  private readonly clock: Clock
  private readonly progress: ClientProgress
  private readonly counts: () => TileCounts
  private readonly running: () => boolean

  constructor (options: { clock: Clock, progress: ClientProgress, counts: () => TileCounts, running: () => boolean }) {
    this.clock = options.clock
    this.progress = options.progress
    this.counts = options.counts
    this.running = options.running
  }

  /** `tile` (numbered across phases) was placed, computed by `peer`: told with the next report. */
  place (peer: string, tile: number): void {
    const tiles = this.placed.get(peer) ?? []
    tiles.push(tile)
    this.placed.set(peer, tiles)
    this.placedCount++
  }

  /** The counts now, with every tile placed since the last report. */
  now (): void {
    do {
      const placed = this.placedCount > 0 ? this.takePlaced() : undefined
      this.progress.report({ type: 'progress', phase: 'tiles', ...this.counts(), ...(placed !== undefined ? { placed } : {}) })
    } while (this.placedCount > 0)
  }

  /** As tiles land: now, if the last report is old enough or every tile is in; else once it is old enough, if the job still runs. */
  soon (done: number, total: number): void {
    const since = this.clock.now() - this.progress.at
    if (done === total || since > TILE_PROGRESS_EVERY_MS) {
      this.clock.clearTimeout(this.trailing)
      this.trailing = undefined
      this.now()
    } else {
      this.trailing ??= this.clock.setTimeout(() => { this.trailing = undefined; if (this.running()) this.now() }, TILE_PROGRESS_EVERY_MS - since)
    }
  }

  stop (): void {
    this.clock.clearTimeout(this.trailing)
  }

  private takePlaced (): Record<string, number[]> {
    const told: Record<string, number[]> = {}
    let room = MAX_PLACED_TOLD
    for (const [peer, tiles] of this.placed) {
      const some = tiles.splice(0, room)
      told[peer] = some
      room -= some.length
      this.placedCount -= some.length
      if (tiles.length === 0) this.placed.delete(peer)
      if (room === 0) break
    }
    if (this.placedCount === 0) this.placed = new Map()
    return told
  }
}
