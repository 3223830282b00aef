import { blit, extract, growRect, type RawImage, type Rect } from './pixels/raw.ts'

/**
 * The tile grid: which pixels each tile owns and which it reads. What a tile
 * computes is the job's phases' (phases.ts); running tiles here, without the
 * network, is tile-runner.ts.
 */

/** A tile: the pixels it owns in the output (core) and what it reads (haloed). */
export interface Tile {
  index: number
  core: Rect
  haloed: Rect
}

/**
 * Row-major grid of tileSize squares (the last row and column may be smaller),
 * each grown by `halo` and clipped to the image.
 */
export function planTiles (width: number, height: number, tileSize: number, halo: number): Tile[] {
  if (!Number.isInteger(tileSize) || tileSize < 1) throw new RangeError(`tile size must be a positive integer, got ${tileSize}`)
  const tiles: Tile[] = []
  for (let y = 0; y < height; y += tileSize) {
    for (let x = 0; x < width; x += tileSize) {
      const core = { x, y, width: Math.min(tileSize, width - x), height: Math.min(tileSize, height - y) }
      tiles.push({ index: tiles.length, core, haloed: growRect(core, halo, width, height) })
    }
  }
  return tiles
}

export function tileCount (width: number, height: number, tileSize: number): number {
  return Math.ceil(width / tileSize) * Math.ceil(height / tileSize)
}

/** A tile's input: its haloed rectangle (the image itself for a tile that covers it all). */
export function tileInput (image: RawImage, tile: Tile): RawImage {
  return extract(image, tile.haloed)
}

export function placeTile (output: RawImage, tile: Tile, core: RawImage): void {
  blit(output, core, tile.core.x, tile.core.y)
}
