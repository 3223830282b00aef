import { blit, createRaw, extract, type PixelFormat, type RawImage, type Rect } from './raw.ts'
import { withPassGate, type Gate } from './gate.ts'
import { pipelineFormat, pipelineRadius, runPipeline, type Step } from './pipeline.ts'

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
      const x0 = Math.max(0, x - halo)
      const y0 = Math.max(0, y - halo)
      const x1 = Math.min(width, x + core.width + halo)
      const y1 = Math.min(height, y + core.height + halo)
      tiles.push({ index: tiles.length, core, haloed: { x: x0, y: y0, width: x1 - x0, height: y1 - y0 } })
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

/** Runs the pipeline on a haloed tile and crops the halo away: the tile's core. */
export async function processTile (haloedPixels: RawImage, tile: Tile, steps: readonly Step[], options: { gate?: Gate } = {}): Promise<RawImage> {
  const { core, haloed } = tile
  const halo = pipelineRadius(steps)
  // A side with less than the full halo was clipped: it is the picture's edge.
  const borders = {
    top: core.y - haloed.y < halo,
    right: haloed.x + haloed.width - (core.x + core.width) < halo,
    bottom: haloed.y + haloed.height - (core.y + core.height) < halo,
    left: core.x - haloed.x < halo,
  }
  const crop = { x: core.x - haloed.x, y: core.y - haloed.y, width: core.width, height: core.height }
  return await withPassGate(options.gate, async () => await runPipeline(haloedPixels, steps, { borders, crop }))
}

/** The output image a pipeline makes from `input`, empty, for tiles to be placed in. */
export function createOutput (width: number, height: number, input: PixelFormat, steps: readonly Step[]): RawImage {
  return createRaw(width, height, pipelineFormat(input, steps))
}

export function placeTile (output: RawImage, tile: Tile, core: RawImage): void {
  blit(output, core, tile.core.x, tile.core.y)
}

/** Tiled processing in one process: what the swarm does, without the network. */
export async function runTiled (image: RawImage, steps: readonly Step[], tileSize: number): Promise<RawImage> {
  const tiles = planTiles(image.width, image.height, tileSize, pipelineRadius(steps))
  const output = createOutput(image.width, image.height, image, steps)
  for (const tile of tiles) placeTile(output, tile, await processTile(tileInput(image, tile), tile, steps))
  return output
}
