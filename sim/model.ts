import { createRaw, extract, processFile, processTile, samples, withSamples, type PixelFormat, type RawImage, type Tile, type TileWork, type Gate } from '../src/imaging/index.ts'
import type { ImageProcessor } from '../src/worker/batch-lane.ts'
import type { TileProcessor } from '../src/worker/tile-lane.ts'

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

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** A modelled pass of `ms`, through the worker's gate as a real pass goes into libuv's pool (one a slot). */
async function modelledPass (ms: number, gate: Gate): Promise<void> {
  if (ms > 0.5) await gate(async () => { await sleep(ms) })
}

/**
 * Simulated compute: the real (cheap) pipeline runs so real pixels travel and
 * the output can be checked, and the tile then takes as long as the cost model
 * says: nsPerPixel for each core pixel, times the peer's slowness factor.
 */
export function costModel (nsPerPixel: number, slowness: () => number): TileProcessor {
  return async (pixels: RawImage, tile: Tile, work: TileWork, gate: Gate): Promise<RawImage | Uint8Array> => {
    const out = await processTile(pixels, tile, work)
    await modelledPass(tile.core.width * tile.core.height * nsPerPixel / 1e6 * slowness(), gate)
    return out
  }
}

/** A batch's image, really processed, then held for its modelled time (per pixel, times the peer's slowness) through the worker's gate. */
export function imageCostModel (nsPerPixel: number, slowness: () => number): ImageProcessor {
  return async (file, steps, options, gate) => {
    const out = await processFile(file, steps, options)
    await modelledPass(out.width * out.height * nsPerPixel / 1e6 * slowness(), gate)
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

/** A host's compute in the emulated scaling benchmark, calibrated on this machine from the real operation. */
export interface ComputeModel {
  /** What the operation takes one thread here, per output pixel of a tile. */
  nsPerPixel: number
  /** A real tile's real result: modelled tiles are cut from it, so the coordinator encodes a photo's worth of detail, not a flat image. */
  patch: RawImage
}

/**
 * A tile's compute that takes the time the model says and no CPU, so 16
 * hosts fit on two cores: a tile gives a crop of the real patch. Everything
 * else a peer does stays real: the network, and the coordinator's own work
 * (its one decode of the input, cutting and sending the tiles' pixels,
 * placing the results, the encode).
 */
export function modelledCompute (model: ComputeModel): { process: TileProcessor } {
  return {
    process: async (_pixels, tile, work, gate) => {
      if (work.plan.phases.length > 1) throw new Error('the cost model covers one-phase jobs: a summary is not a crop of a patch')
      const { width, height } = tile.core
      if (width > model.patch.width || height > model.patch.height) throw new Error(`tile of ${width}x${height} is larger than the model's patch`)
      await gate(async () => { await sleep(width * height * model.nsPerPixel / 1e6) })
      // A copy: the worker frees what it is given once it is sent.
      const crop = extract(model.patch, { x: 0, y: 0, width, height })
      return crop === model.patch ? { ...crop, data: Buffer.from(crop.data) } : crop
    },
  }
}
