import { InvalidParameterError } from '../common/errors.ts'
import { MAX_PIPELINE_STEPS } from '../protocol/constants.ts'
import type { Operation, StepPlace } from './operations/operation.ts'
import { validateParams, type Params } from './operations/params.ts'
import { joinAlpha, padReplicate, freeBuffer, splitAlpha, extract, type PixelFormat, type RawImage, type Channels, type Rect, type Sides } from './pixels/raw.ts'
import { getOperation } from './operations/registry.ts'

/** One step as it is written by users and sent on the wire. */
export interface OpSpec {
  op: string
  params?: Record<string, unknown>
}

export interface Step {
  operation: Operation
  params: Params
}

/**
 * Parses "blur:sigma=2,sobel" into steps. Commas inside [...] belong to a
 * kernel, so "convolve:kernel=[1,2,1,2,4,2,1,2,1]" is one step.
 */
export function parseOps (text: string): OpSpec[] {
  const steps: string[] = []
  let depth = 0
  let current = ''
  for (const ch of text) {
    if (ch === '[') depth++
    if (ch === ']') depth = Math.max(0, depth - 1)
    if (ch === ',' && depth === 0) {
      steps.push(current)
      current = ''
    } else {
      current += ch
    }
  }
  steps.push(current)
  const trimmed = steps.map(s => s.trim())
  // 'blur:3,' or 'blur,,sobel' is a step left out, most likely by mistake: say so rather than guess.
  const empty = trimmed.findIndex(s => s === '')
  if (empty >= 0 && trimmed.length > 1) throw new InvalidParameterError(`Expected an operation at step ${empty + 1} of '${text}' but found nothing (a stray comma?)`)
  return trimmed.filter(s => s !== '').map(parseStep)
}

function parseStep (text: string): OpSpec {
  const [name, ...parts] = text.split(':')
  // 'resize:width=2048,height=2048': a comma starts a step, so 'height=2048' came as one.
  if (name!.includes('=')) throw new InvalidParameterError(`'${name!.trim()}' is not an operation: parameters follow ':' (resize:width=2048:height=2048), and ',' starts the next step`)
  const op = getOperation(name!)
  const params: Record<string, unknown> = {}
  let bare = 0
  for (const part of parts) {
    const eq = part.indexOf('=')
    if (eq < 0) {
      // Bare values fill the parameters in order: crop:10:20:640:480.
      const next = op.params[bare++]
      if (op.params.length === 0) throw new InvalidParameterError(`${op.name} takes no parameters, got '${part}'`)
      if (next === undefined) throw new InvalidParameterError(`${op.name} takes ${op.params.length === 1 ? 'one parameter' : `${op.params.length} parameters`} (${op.params.map(p => p.name).join(', ')}), got '${text}'`)
      params[next.name] = part.trim()
    } else {
      params[part.slice(0, eq).trim()] = part.slice(eq + 1).trim()
    }
  }
  return { op: name!.trim(), params }
}

/** Validates a pipeline from any source (CLI or wire) and fills in defaults. */
export function resolvePipeline (specs: readonly OpSpec[]): Step[] {
  if (!Array.isArray(specs) || specs.length === 0) throw new InvalidParameterError('Expected at least one operation (see --list-ops)')
  if (specs.length > MAX_PIPELINE_STEPS) throw new InvalidParameterError(`Expected at most ${MAX_PIPELINE_STEPS} operations in a pipeline but received ${specs.length}`)
  return specs.map(spec => {
    if (typeof spec !== 'object' || spec === null || typeof spec.op !== 'string') throw new InvalidParameterError('Expected each operation as {op, params}')
    const operation = getOperation(spec.op)
    const given = spec.params ?? {}
    if (typeof given !== 'object' || given === null || Array.isArray(given)) throw new InvalidParameterError(`Expected params of ${operation.name} as an object`)
    const params = validateParams(operation.params, given, operation.name)
    operation.check?.(params)
    return { operation, params }
  })
}

/** The canonical wire form: canonical names, every parameter explicit. */
export function toSpecs (steps: readonly Step[]): OpSpec[] {
  return steps.map(s => ({ op: s.operation.name, params: { ...s.params } }))
}

export function describePipeline (steps: readonly Step[]): string {
  return steps.map(s => {
    const ps = Object.entries(s.params).map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.join(',')}]` : String(v)}`)
    return ps.length === 0 ? s.operation.name : `${s.operation.name}:${ps.join(':')}`
  }).join(',')
}

/** The halo a tile needs: radii add up along the pipeline. */
export function pipelineRadius (steps: readonly Step[]): number {
  return steps.reduce((sum, s) => sum + s.operation.radius(s.params), 0)
}

export function stepFormat (format: PixelFormat, step: Step): PixelFormat {
  const alpha = format.channels === 2 || format.channels === 4
  const colour = step.operation.colourOut(alpha ? (format.channels - 1) as 1 | 3 : format.channels as 1 | 3)
  const keepAlpha = alpha && step.operation.alpha !== 'drop'
  return { channels: (colour + (keepAlpha ? 1 : 0)) as Channels, depth: format.depth }
}

/** The pixel format a pipeline turns `input` into. */
export function pipelineFormat (input: PixelFormat, steps: readonly Step[]): PixelFormat {
  return steps.reduce(stepFormat, { channels: input.channels, depth: input.depth })
}

/** Which sides of an image are the picture's own edges; the others are halo. */
export interface Borders {
  top: boolean
  right: boolean
  bottom: boolean
  left: boolean
}

export const ALL_BORDERS: Readonly<Borders> = { top: true, right: true, bottom: true, left: true }

export interface PipelineOptions {
  /**
   * Sides that are the picture's edges: the input is padded there by each
   * step's radius, replicating the edge, so a tile sees what the whole image
   * sees. A halo side needs no padding: what a step gets wrong within its
   * radius of it lies in the halo, which the crop drops. Default: all.
   */
  borders?: Borders
  /** The part of the input whose result is wanted. Default: all of it. */
  crop?: Rect
}

/**
 * Where a tile's input sits in the image, for a step that needs the whole
 * image (a global step): `valid` is in the input's own coordinates.
 */
export interface StepOptions extends PipelineOptions {
  place?: StepPlace
  /** This tile's context for a global step, from its phase's reduction. */
  context?: Uint8Array
}

/** Whether a step needs the whole image's statistics or connectivity with these parameters. */
export function isGlobal (step: Step): boolean {
  return step.operation.global?.needed(step.params) === true
}

function sidesOf (r: number, borders: Borders): Sides {
  return { top: borders.top ? r : 0, right: borders.right ? r : 0, bottom: borders.bottom ? r : 0, left: borders.left ? r : 0 }
}

/** A place seen from the padded input: the same pixels, shifted by the padding. */
function paddedPlace (place: StepPlace, pad: Sides): StepPlace {
  return { ...place, origin: { x: place.origin.x - pad.left, y: place.origin.y - pad.top }, valid: { ...place.valid, x: place.valid.x + pad.left, y: place.valid.y + pad.top } }
}

function wholePlace (image: RawImage): StepPlace {
  return { width: image.width, height: image.height, origin: { x: 0, y: 0 }, valid: { x: 0, y: 0, width: image.width, height: image.height }, tile: 0, step: 0 }
}

async function compute (input: RawImage, step: Step, options: StepOptions, pad: Sides): Promise<RawImage> {
  const global = step.operation.global
  if (global === undefined || !global.needed(step.params)) return await step.operation.apply(input, step.params)
  if (options.place === undefined) return await global.whole(input, step.params, paddedPlace(wholePlace({ ...input, width: input.width - pad.left - pad.right, height: input.height - pad.top - pad.bottom }), pad))
  if (options.context === undefined) throw new Error(`internal: ${step.operation.name} on a tile without its context`)
  return await global.apply(input, step.params, options.context, paddedPlace(options.place, pad))
}

async function padded (image: RawImage, r: number, step: Step, options: StepOptions, crop: Rect): Promise<RawImage> {
  const pad = sidesOf(r, options.borders ?? ALL_BORDERS)
  const input = padReplicate(image, pad)
  const out = await compute(input, step, options, pad)
  const result = extract(out, { x: pad.left + crop.x, y: pad.top + crop.y, width: crop.width, height: crop.height })
  // Intermediates are freed at once: a tile's worth of garbage per step adds up to collections.
  freeBuffer(input.data, [image.data, result.data])
  freeBuffer(out.data, [image.data, result.data])
  return result
}

/** One step on a whole image or a haloed tile (see PipelineOptions); not a geometry step. */
export async function applyStep (image: RawImage, step: Step, options: StepOptions = {}): Promise<RawImage> {
  const r = step.operation.radius(step.params)
  const crop = options.crop ?? { x: 0, y: 0, width: image.width, height: image.height }
  const [colour, alpha] = splitAlpha(image)
  const colourOut = await padded(colour, r, step, options, crop)
  let alphaOut: RawImage | undefined
  if (alpha !== undefined) {
    if (step.operation.alpha === 'keep') alphaOut = extract(alpha, crop)
    else if (step.operation.alpha === 'filter') alphaOut = await padded(alpha, r, step, options, crop)
  }
  const out = joinAlpha(colourOut, alphaOut)
  for (const part of [colour, alpha, colourOut, alphaOut]) freeBuffer(part?.data, [image.data, out.data])
  const want = stepFormat(image, step)
  if (out.channels !== want.channels || out.depth !== want.depth || out.width !== crop.width || out.height !== crop.height) {
    throw new Error(`internal: ${step.operation.name} returned ${out.width}x${out.height} ${out.channels}ch ${out.depth}-bit`)
  }
  return out
}

/** A global step's summary of `place.valid` (a tile's core), from its colour channels. */
export async function summariseStep (image: RawImage, step: Step, options: { borders: Borders, place: StepPlace }): Promise<Uint8Array> {
  const global = step.operation.global
  if (global === undefined) throw new Error(`internal: ${step.operation.name} has no summary`)
  const pad = sidesOf(step.operation.radius(step.params), options.borders)
  const [colour] = splitAlpha(image)
  const input = padReplicate(colour, pad)
  const summary = await global.summarise(input, step.params, paddedPlace(options.place, pad))
  freeBuffer(input.data, [image.data])
  if (colour !== image) freeBuffer(colour.data)
  return summary
}

/**
 * The whole image, step after step: the reference every tiled run is held to.
 * Geometry steps take the whole image; global steps compute on it directly.
 */
export async function runPipeline (image: RawImage, steps: readonly Step[]): Promise<RawImage> {
  let current = image
  for (const step of steps) {
    const next = step.operation.geometry !== undefined ? await step.operation.geometry.apply(current, step.params) : await applyStep(current, step)
    if (current !== image) freeBuffer(current.data, [image.data, next.data])
    current = next
  }
  return current
}
