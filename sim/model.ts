import { createRaw, processTile, samples, withSamples, type PixelFormat, type RawImage, type Step, type Tile, semaphore } from '../src/imaging/index.ts'
import type { TileProcessor } from '../src/worker/worker.ts'

/** mulberry32: a small seeded PRNG, so a scenario with --seed repeats. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Simulated compute: the real (cheap) pipeline runs so real pixels travel and
 * the output can be checked, and the tile then takes as long as the cost model
 * says: nsPerPixel for each core pixel, times the peer's slowness factor.
 */
export function costModel (nsPerPixel: number, slowness: () => number, slots = 1): TileProcessor {
  // The peer's libuv pool, modelled: one modelled pass computing per slot.
  const pool = semaphore(slots)
  return async (pixels: RawImage, tile: Tile, steps: Step[]): Promise<RawImage> => {
    const out = await processTile(pixels, tile, steps)
    const wantMs = tile.core.width * tile.core.height * nsPerPixel / 1e6 * slowness()
    if (wantMs > 0.5) await pool(async () => await new Promise(resolve => setTimeout(resolve, wantMs)))
    return out
  }
}

/** Seeded noise: the worst case for tiling, every pixel differs from its neighbours. */
export function noiseImage (width: number, height: number, format: PixelFormat, seed: number): RawImage {
  const image = createRaw(width, height, format)
  const s = samples(image)
  let x = (seed >>> 0) || 1
  const max = format.depth === 16 ? 65536 : 256
  for (let i = 0; i < s.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    s[i] = (x >>> 0) % max
  }
  return withSamples(image, s)
}
