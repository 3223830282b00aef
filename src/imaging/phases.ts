import { InvalidParameterError } from '../common/errors.ts'
import { MAX_IMAGE_SIDE_PX } from '../protocol/constants.ts'
import type { GridInfo, Reducer, StepContext, TileMemo } from './operations/operation.ts'
import { applyStep, isGlobal, pipelineFormat, pipelineRadius, runPipeline, stepFormat, summariseStep, type Borders, type Step } from './pipeline.ts'
import { createRaw, extract, freeBuffer, growRect, hasAlpha, type Channels, type PixelFormat, type RawImage, type Rect } from './pixels/raw.ts'
import type { Tile } from './tiles.ts'

/**
 * One phase of a job: a set of tiles. A summary phase runs the steps before
 * a global step on each tile and reports that step's summary of its core; the
 * last phase runs every step and makes the output's pixels.
 */
export interface PhasePlan {
  index: number
  /** The steps a tile runs: steps.slice(0, end). */
  end: number
  /** The global step this phase summarises (steps[end]); undefined in the last phase. */
  summarises?: Step
  /** Each tile's halo this phase. */
  halo: number
}

/**
 * How a job runs. Geometry steps change the grid, so they and any step
 * before them run first on the whole image (the coordinator does it once per
 * job, on the input it decoded); the steps after are tiled, one phase per global
 * step and a last one for the pixels.
 */
export interface JobPlan {
  prelude: Step[]
  /** The tiled steps. */
  steps: Step[]
  /** The image the tiles cover: the input after the prelude. */
  width: number
  height: number
  format: PixelFormat
  outputFormat: PixelFormat
  phases: PhasePlan[]
  /** The most pixels any image of the job has (the input, a prelude step's output, the tiled image). */
  largestPixels: number
}

export interface ImageShape {
  width: number
  height: number
  format: PixelFormat
}

export function planJob (steps: readonly Step[], input: ImageShape): JobPlan {
  const lastGeometry = steps.findLastIndex(s => s.operation.geometry !== undefined)
  const prelude = steps.slice(0, lastGeometry + 1)
  const tiled = steps.slice(lastGeometry + 1)
  let { width, height } = input
  let format: PixelFormat = { ...input.format }
  let largestPixels = width * height
  for (const step of prelude) {
    if (step.operation.geometry !== undefined) ({ width, height } = step.operation.geometry.size(width, height, step.params))
    format = stepFormat(format, step)
    if (width > MAX_IMAGE_SIDE_PX || height > MAX_IMAGE_SIDE_PX) throw new InvalidParameterError(`${step.operation.name} would make the image ${width}x${height}: its sides are limited to ${MAX_IMAGE_SIDE_PX} pixels`)
    largestPixels = Math.max(largestPixels, width * height)
  }
  const phases: PhasePlan[] = []
  for (const [i, step] of tiled.entries()) {
    if (isGlobal(step)) phases.push({ index: phases.length, end: i, summarises: step, halo: pipelineRadius(tiled.slice(0, i + 1)) })
  }
  phases.push({ index: phases.length, end: tiled.length, halo: pipelineRadius(tiled) })
  return { prelude, steps: tiled, width, height, format, outputFormat: pipelineFormat(format, tiled), phases, largestPixels }
}

/** What a tile of one phase needs besides its pixels. */
export interface TileWork {
  plan: JobPlan
  phase: number
  /** This tile's contexts of the global steps before this phase, by step index. */
  contexts: ReadonlyMap<number, Uint8Array>
  /** What this peer keeps of the job's phases for the next (its own, per job). */
  memo?: TileMemo
}

function shift (rect: Rect, origin: { x: number, y: number }): Rect {
  return { ...rect, x: rect.x - origin.x, y: rect.y - origin.y }
}

/**
 * One tile of one phase, from its haloed pixels: the core's pixels (last
 * phase) or the phase's summary of the core. Each step's result must be right
 * on the core grown by the radii of the steps after it: a global step is told
 * that region, and computes its connectivity there and nowhere else.
 */
export async function runPhaseTile (haloedPixels: RawImage, tile: Tile, work: TileWork): Promise<RawImage | Uint8Array> {
  const { plan } = work
  const phase = plan.phases[work.phase]
  if (phase === undefined) throw new Error(`internal: no phase ${work.phase}`)
  const { core, haloed } = tile
  // A side with less than the full halo was clipped: it is the picture's edge.
  const borders: Borders = {
    top: core.y - haloed.y < phase.halo,
    right: haloed.x + haloed.width - (core.x + core.width) < phase.halo,
    bottom: haloed.y + haloed.height - (core.y + core.height) < phase.halo,
    left: core.x - haloed.x < phase.halo,
  }
  const steps = plan.steps.slice(0, phase.end)
  const tail = phase.summarises !== undefined ? phase.summarises.operation.radius(phase.summarises.params) : 0
  let current = haloedPixels
  let origin = { x: haloed.x, y: haloed.y }
  for (const [j, step] of steps.entries()) {
    const last = j === steps.length - 1 && phase.summarises === undefined
    const valid = growRect(core, pipelineRadius(steps.slice(j + 1)) + tail, plan.width, plan.height)
    const next = await applyStep(current, step, {
      borders,
      ...(last ? { crop: shift(core, origin) } : {}),
      place: { width: plan.width, height: plan.height, origin, valid: shift(valid, origin), tile: tile.index, step: j, ...(work.memo !== undefined ? { memo: work.memo } : {}) },
      ...(work.contexts.has(j) ? { context: work.contexts.get(j) } : {}),
    })
    if (current !== haloedPixels) freeBuffer(current.data, [haloedPixels.data, next.data])
    current = next
    if (last) origin = { x: core.x, y: core.y }
  }
  if (phase.summarises !== undefined) {
    const summary = await summariseStep(current, phase.summarises, { borders, place: { width: plan.width, height: plan.height, origin, valid: shift(core, origin), tile: tile.index, step: phase.end, reach: pipelineRadius(plan.steps.slice(phase.end + 1)), sameRegionNext: nextRegionRadius(plan, phase) === 0, ...(work.memo !== undefined ? { memo: work.memo } : {}) } })
    if (current !== haloedPixels) freeBuffer(current.data, [haloedPixels.data])
    return summary
  }
  // Nothing tiled (every step was in the prelude): the core itself.
  return steps.length === 0 ? extract(current, shift(core, origin)) : current
}

/** How far past its core the phase after `phase` runs the step `phase` summarises. */
function nextRegionRadius (plan: JobPlan, phase: PhasePlan): number {
  const next = plan.phases[phase.index + 1]!
  const tail = next.summarises !== undefined ? next.summarises.operation.radius(next.summarises.params) : 0
  return pipelineRadius(plan.steps.slice(phase.end + 1, next.end)) + tail
}

/** A bound on any summary of a core: a histogram per channel of 16-bit samples, or a label per pixel and a few more. */
export function maxSummaryBytes (core: Rect): number {
  return Math.max(4 * 65536 * 4, 8 * (core.width * core.height + 1))
}

/** The colour format a global step sees (alpha never enters a summary). */
function colourFormat (plan: JobPlan, end: number): PixelFormat {
  const f = pipelineFormat(plan.format, plan.steps.slice(0, end))
  return { channels: (hasAlpha(f) ? f.channels - 1 : f.channels) as Channels, depth: f.depth }
}

function gridOf (plan: JobPlan, phase: PhasePlan): Omit<GridInfo, 'cores'> {
  return { width: plan.width, height: plan.height, reach: pipelineRadius(plan.steps.slice(phase.end + 1)), format: colourFormat(plan, phase.end) }
}

/** Why a tile's summary cannot be right for its phase, or undefined if it can. */
export function checkSummary (plan: JobPlan, phase: number, core: Rect, summary: Uint8Array): string | undefined {
  const p = plan.phases[phase]
  if (p?.summarises === undefined) return `phase ${phase} takes pixels, not a summary`
  return p.summarises.operation.global!.checkSummary(summary, p.summarises.params, core, gridOf(plan, p))
}

/** The coordinator's reduction of a summary phase, fed each tile's summary once: the context its global step is applied with. */
export function phaseReducer (plan: JobPlan, phase: number, cores: Rect[]): Reducer {
  const p = plan.phases[phase]
  if (p?.summarises === undefined) throw new Error(`internal: phase ${phase} has no summaries`)
  return p.summarises.operation.global!.reducer(p.summarises.params, { ...gridOf(plan, p), cores })
}

/** One tile's share of the contexts reduced so far. */
export function contextsOfTile (contexts: ReadonlyMap<number, StepContext>, tile: number): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>()
  for (const [step, context] of contexts) out.set(step, 'shared' in context ? context.shared : context.perTile[tile]!)
  return out
}

/** The prelude on the whole input: what every tile of the job is cut from. */
export async function runPrelude (image: RawImage, plan: JobPlan): Promise<RawImage> {
  return plan.prelude.length === 0 ? image : await runPipeline(image, plan.prelude)
}

/** The output, empty, for the last phase's tiles to be placed in. */
export function createPlanOutput (plan: JobPlan): RawImage {
  return createRaw(plan.width, plan.height, plan.outputFormat)
}
