import type { ParamSpec, Params } from './params.ts'
import type { Sharp } from 'sharp'
import type { PixelFormat, RawImage, Rect } from '../pixels/raw.ts'

export type Family = 'filter' | 'edge' | 'colour' | 'geometry'

/** What an operation does with an alpha channel. */
export type AlphaPolicy =
  | 'keep' // colour operations: alpha passes through untouched
  | 'filter' // spatial filters: alpha is filtered like a grey channel
  | 'drop' // the result has no alpha (edge maps)

/** `colourOut` for an operation that keeps the channels it is given. */
export const sameChannels = (channels: 1 | 3): 1 | 3 => channels

export interface Operation {
  name: string
  aliases?: string[]
  family: Family
  summary: string
  /** An example for --list-ops, as it is typed on the command line. */
  example: string
  params: ParamSpec[]
  /** Checks that need more than one parameter (low <= high); throws InvalidParameterError. */
  check?: (params: Params) => void
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
  /** A step that needs the whole image's statistics or connectivity: a phase of its own. */
  global?: GlobalStep
  /** A step that changes the image's size or layout: run on the whole image (see JobPlan). */
  geometry?: GeometryStep
}

/** Where a step's input sits in the image: what steps that see more than a window need. */
export interface StepPlace {
  /** The image the step works on (after the steps before it). */
  width: number
  height: number
  /** Image coordinates of the step input's pixel (0, 0); negative where it is padding. */
  origin: { x: number, y: number }
  /** The part of the step's input whose result must be right (input coordinates); outside it the output is cropped away. */
  valid: Rect
  /** The tile, in the job's grid: its context is this tile's. */
  tile: number
  /** How far past `valid` the steps after this one look (a summary must cover what they will ask of it). */
  reach?: number
  /** The step's index among the job's tiled steps. */
  step: number
  /** Where a summary may leave work for the same step on the same tile in a later phase (this peer's, for this job). */
  memo?: TileMemo
  /** The next phase runs this step on this same region: what the summary did there is worth keeping for it. */
  sameRegionNext?: boolean
}

/**
 * What a worker keeps between the phases of a job: a summary phase's work
 * that its next phase would do again (Canny classifies the same pixels in
 * both). Bounded; the oldest go first, and a miss only costs the work.
 */
export class TileMemo {
  private readonly maxBytes: number
  private readonly kept = new Map<string, Uint8Array>()
  private bytes = 0

  constructor (maxBytes: number) {
    this.maxBytes = maxBytes
  }

  put (key: string, value: Uint8Array): void {
    if (value.byteLength > this.maxBytes) return
    this.take(key)
    this.kept.set(key, value)
    this.bytes += value.byteLength
    for (const [oldest, v] of this.kept) {
      if (this.bytes <= this.maxBytes) break
      this.kept.delete(oldest)
      this.bytes -= v.byteLength
    }
  }

  /** The value, once: it is dropped as it is taken. */
  take (key: string): Uint8Array | undefined {
    const value = this.kept.get(key)
    if (value !== undefined) {
      this.kept.delete(key)
      this.bytes -= value.byteLength
    }
    return value
  }
}

/** What the coordinator knows when it reduces a phase's summaries. */
export interface GridInfo {
  width: number
  height: number
  /** Every tile's core, in grid order. */
  cores: Rect[]
  /** How far past its core a tile's later steps look: the step's output must be right that far out. */
  reach: number
  /** The step's input format (colour channels only; alpha never enters a summary). */
  format: PixelFormat
}

/**
 * A step whose output depends on the whole image. Each tile summarises its
 * core (a histogram, the labels on its border); the coordinator reduces the
 * summaries to a context per tile; a later phase applies the step with it.
 */
export interface GlobalStep {
  /** Whether these parameters need the whole image (threshold:auto does, threshold:100 does not). */
  needed: (params: Params) => boolean
  /** One tile's summary of `place.valid` (its core), from the step's padded colour input. */
  summarise: (image: RawImage, params: Params, place: StepPlace) => Promise<Uint8Array>
  /** Why a summary cannot be one this step made for that core, or undefined if it can. */
  checkSummary: (summary: Uint8Array, params: Params, core: Rect, grid: Omit<GridInfo, 'cores'>) => string | undefined
  /**
   * The coordinator's reduction, fed each tile's summary once as it arrives
   * (a histogram is summed then and there, not kept): what each tile's apply
   * needs (shared: one context for every tile).
   */
  reducer: (params: Params, grid: GridInfo) => Reducer
  /** The step with its context, like apply() otherwise. */
  apply: (image: RawImage, params: Params, context: Uint8Array, place: StepPlace) => Promise<RawImage>
  /** The step on a whole image (place.valid is all of it), computed directly: the reference tiles are held to. */
  whole: (image: RawImage, params: Params, place: StepPlace) => Promise<RawImage>
}

export interface Reducer {
  add: (tile: number, summary: Uint8Array) => void
  finish: () => StepContext
}

/** A reduced phase: one context every tile shares, or one per tile. */
export type StepContext = { shared: Uint8Array } | { perTile: Uint8Array[] }

export interface GeometryStep {
  /** The output's size for an input of width x height; a parameter that does not fit the image throws. */
  size: (width: number, height: number, params: Params) => { width: number, height: number }
  /** On every channel, alpha included. */
  apply: (image: RawImage, params: Params) => Promise<RawImage>
}
