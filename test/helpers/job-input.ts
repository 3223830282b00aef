import type { JobOptions } from '../../src/job/tiled-job.ts'
import { TilePixels } from '../../src/job/tile-pixels.ts'
import { planJob, type RawImage, type Step } from '../../src/imaging/index.ts'

/** What a coordinator is given of its job's input: the shape, and the decoded pixels its grants are cut from. */
export function inputOf (image: RawImage, steps: readonly Step[]): Pick<JobOptions, 'shape' | 'pixels'> {
  const shape = { width: image.width, height: image.height, format: { channels: image.channels, depth: image.depth } }
  return { shape, pixels: new TilePixels(async () => image, planJob(steps, shape)) }
}

/** Until a new coordinator's pixels can be cut (no tile is granted before): the decode here is a value at hand, ready on the next turn. */
export async function pixelsReady (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}
