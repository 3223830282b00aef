import type { ParamSpec, Params } from './params.ts'
import type { Sharp } from 'sharp'
import type { RawImage } from './raw.ts'

export type Family = 'filter' | 'edge' | 'colour'

/** What an operation does with an alpha channel. */
export type AlphaPolicy =
  | 'keep' // colour operations: alpha passes through untouched
  | 'filter' // spatial filters: alpha is filtered like a grey channel
  | 'drop' // the result has no alpha (edge maps)

export interface Operation {
  name: string
  aliases?: string[]
  family: Family
  summary: string
  /** An example for --list-ops, as it is typed on the command line. */
  example: string
  params: ParamSpec[]
  /**
   * How far (pixels) an output pixel's value reaches into the input. Tiles
   * carry a halo of the pipeline's summed radii, so this must never be too small.
   */
  radius: (params: Params) => number
  /** Colour channels out, for colour channels in (alpha is separate). */
  colourOut: (channels: 1 | 3) => 1 | 3
  alpha: AlphaPolicy
  /**
   * Runs on colour channels only (1 or 3), already padded by `radius` pixels of
   * replicated edge; returns an image of the same size (its border is cropped).
   */
  apply: (image: RawImage, params: Params) => Promise<RawImage>
  /**
   * The same operation as a step of a sharp pipeline on a whole image, where
   * it gives exactly what apply() gives with the edges replicated (tests hold
   * it to that): a job nobody shares runs as one pipeline, as sharp's own.
   */
  native?: (pipeline: Sharp, params: Params) => Sharp
}
