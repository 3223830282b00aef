import { processTile } from '../src/imaging/index.ts'
import type { TileProcessor } from '../src/worker/tile-lane.ts'

/** What a lying worker did: tiles it computed, and those it sent back wrong. */
export interface Lies {
  computed: number
  lied: number
}

/**
 * A worker's tile compute that lies: a share of its results come back with
 * one bit flipped (bad memory, a miscompiled libvips, or an operator who
 * wants to spoil jobs). Its checksum is computed after, so the result passes
 * every check but a second computation. `share` is read per tile, so a
 * peer can start lying mid-job.
 */
export function lyingProcessor (share: () => number, random: () => number, inner?: TileProcessor, lies: Lies = { computed: 0, lied: 0 }, onLie?: (tile: number, phase: number) => void): TileProcessor {
  return async (pixels, tile, work, gate) => {
    const out = inner !== undefined ? await inner(pixels, tile, work, gate) : await processTile(pixels, tile, work, { gate })
    lies.computed++
    if (share() <= 0 || random() >= share()) return out
    const bytes = out instanceof Uint8Array ? out : out.data
    if (bytes.length === 0) return out
    lies.lied++
    const at = Math.floor(random() * bytes.length)
    bytes[at] = bytes[at]! ^ (1 << Math.floor(random() * 8))
    onLie?.(tile.index, work.phase)
    return out
  }
}
