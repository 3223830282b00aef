import { tileBitmap } from '../protocol/tile-set.ts'
import type { Clock } from '../common/clock.ts'

interface Held {
  jobKey: string
  tile: number
  checksum: string
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

/**
 * Tile results a worker computed, kept for a while under their job's content
 * identity: if the job's coordinator dies, the next one collects them instead
 * of computing them again. Bounded in bytes and in age; the oldest go first.
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
  put (jobKey: string, tile: number, checksum: string, data: Buffer, size?: { width: number, height: number }): void {
    if (data.length > this.maxBytes) return
    this.delete(`${jobKey}/${tile}`)
    this.held.set(`${jobKey}/${tile}`, { jobKey, tile, checksum, data, ...(size !== undefined ? { size } : {}), at: this.clock.now() })
    this.stats.bytes += data.length
    this.stats.tiles++
    this.trim()
  }

  /** Which tiles of a job are held, as a bitmap (bit i: tile i); undefined if none. */
  heldTiles (jobKey: string): Uint8Array | undefined {
    this.trim()
    const tiles: number[] = []
    for (const h of this.held.values()) if (h.jobKey === jobKey) tiles.push(h.tile)
    if (tiles.length === 0) return undefined
    return tileBitmap(tiles)
  }

  /** Whole images' outputs held (by their task key), newest first, at most `limit`: what a batch's new coordinator reserves for this peer. */
  heldOutputs (limit: number): string[] {
    this.trim()
    const keys: string[] = []
    for (const h of [...this.held.values()].reverse()) {
      if (h.size === undefined || h.tile !== 0) continue
      keys.push(h.jobKey)
      if (keys.length >= limit) break
    }
    return keys
  }

  get (jobKey: string, tile: number): { checksum: string, data: Buffer, size?: { width: number, height: number } } | undefined {
    return this.held.get(`${jobKey}/${tile}`)
  }

  /** Hands a result over for good (to a coordinator in this process, which takes the buffer). */
  take (jobKey: string, tile: number): { checksum: string, data: Buffer } | undefined {
    const h = this.held.get(`${jobKey}/${tile}`)
    if (h !== undefined) this.delete(`${jobKey}/${tile}`)
    return h
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
