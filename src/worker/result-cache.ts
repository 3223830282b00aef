import { tileBitmap } from '../protocol/tile-set.ts'
import type { Clock } from '../common/clock.ts'

interface Held {
  jobKey: string
  /** The job's phase the result is of (a summary, or a later phase's tile): 0 for a one-phase job's. */
  phase: number
  tile: number
  checksum: string
  /** A later phase's result: the digest of the contexts it was computed with (another reduction makes it worthless). */
  context?: string
  data: Buffer
  /** A whole image's output: its size, for whoever it goes to. */
  size?: { width: number, height: number }
  at: number
}

export interface ResultCacheStats {
  bytes: number
  tiles: number
  /** Results handed to a later coordinator of their job. */
  offered: number
  evicted: number
}

/** What a result is, beside its bytes: a whole image's size, a phase, the contexts it was computed with. */
export interface HeldAs {
  size?: { width: number, height: number }
  phase?: number
  context?: string
}

const keyOf = (jobKey: string, phase: number, tile: number): string => `${jobKey}/${phase}/${tile}`

/**
 * Tile results a worker computed, kept for a while under their job's content
 * identity and phase: if the job's coordinator dies, the next one collects
 * them instead of computing them again. Bounded in bytes and in age; the
 * oldest go first.
 */
export class ResultCache {
  private readonly maxBytes: number
  private readonly maxAgeMs: number
  private readonly clock: Clock
  /** Insertion order is age order. */
  private readonly held = new Map<string, Held>()
  readonly stats: ResultCacheStats = { bytes: 0, tiles: 0, offered: 0, evicted: 0 }

  constructor (options: { maxBytes: number, maxAgeMs: number, clock: Clock }) {
    this.maxBytes = options.maxBytes
    this.maxAgeMs = options.maxAgeMs
    this.clock = options.clock
  }

  /** Takes `data`: the cache owns it from now on. */
  put (jobKey: string, tile: number, checksum: string, data: Buffer, as: HeldAs = {}): void {
    if (data.length > this.maxBytes) return
    const phase = as.phase ?? 0
    const key = keyOf(jobKey, phase, tile)
    this.delete(key)
    this.held.set(key, { jobKey, phase, tile, checksum, data, ...(as.size !== undefined ? { size: as.size } : {}), ...(as.context !== undefined ? { context: as.context } : {}), at: this.clock.now() })
    this.stats.bytes += data.length
    this.stats.tiles++
    this.trim()
  }

  /** Which tiles of a job's phase are held, as a bitmap (bit i: tile i); undefined if none. */
  heldTiles (jobKey: string, phase = 0): Uint8Array | undefined {
    return this.heldPhases(jobKey).get(phase)
  }

  /** Which tiles of each of a job's phases are held, as bitmaps; phases with none are absent. */
  heldPhases (jobKey: string): Map<number, Uint8Array> {
    this.trim()
    const tiles = new Map<number, number[]>()
    for (const h of this.held.values()) {
      if (h.jobKey !== jobKey) continue
      const list = tiles.get(h.phase)
      if (list === undefined) tiles.set(h.phase, [h.tile])
      else list.push(h.tile)
    }
    return new Map([...tiles].sort(([a], [b]) => a - b).map(([phase, list]) => [phase, tileBitmap(list)]))
  }

  /** Whole images' outputs held (by their task key), newest first, at most `limit`: what a batch's new coordinator reserves for this peer. */
  heldOutputs (limit: number): string[] {
    this.trim()
    const keys: string[] = []
    for (const h of [...this.held.values()].reverse()) {
      if (h.size === undefined || h.tile !== 0 || h.phase !== 0) continue
      keys.push(h.jobKey)
      if (keys.length >= limit) break
    }
    return keys
  }

  get (jobKey: string, tile: number, phase = 0): { checksum: string, data: Buffer, size?: { width: number, height: number }, context?: string } | undefined {
    return this.held.get(keyOf(jobKey, phase, tile))
  }

  /** Hands a result over for good (to a coordinator in this process, which takes the buffer). */
  take (jobKey: string, tile: number, phase = 0): { checksum: string, data: Buffer, context?: string } | undefined {
    const key = keyOf(jobKey, phase, tile)
    const h = this.held.get(key)
    if (h !== undefined) this.delete(key)
    return h
  }

  /** Results past their age go now, not when the cache is next touched: an idle peer gives their memory back. */
  expire (): void {
    this.trim()
  }

  /** Left to the collector, not freed at once: a send may still be reading it. */
  private delete (key: string): void {
    const h = this.held.get(key)
    if (h === undefined) return
    this.held.delete(key)
    this.stats.bytes -= h.data.length
    this.stats.tiles--
  }

  /** Past the byte bound or the age bound, the oldest go. */
  private trim (): void {
    const oldest = this.clock.now() - this.maxAgeMs
    for (const [key, h] of this.held) {
      if (this.stats.bytes <= this.maxBytes && h.at >= oldest) break
      this.delete(key)
      this.stats.evicted++
    }
  }
}
