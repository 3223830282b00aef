import { InvalidParameterError } from '../errors.ts'
import type { Operation } from './operation.ts'
import { validateParams, type Params } from './params.ts'
import { joinAlpha, padReplicate, freeBuffer, splitAlpha, extract, type PixelFormat, type RawImage, type Channels, type Rect } from './raw.ts'
import { getOperation } from './registry.ts'

/** One step as it is written by users and sent on the wire. */
export interface OpSpec {
  op: string
  params?: Record<string, unknown>
}

export interface Step {
  operation: Operation
  params: Params
}

export const MAX_PIPELINE_STEPS = 16

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
  const op = getOperation(name!)
  const params: Record<string, unknown> = {}
  for (const part of parts) {
    const eq = part.indexOf('=')
    if (eq < 0) {
      const first = op.params[0]
      if (first === undefined) throw new InvalidParameterError(`Operation ${op.name} takes no parameters but received '${part}'`)
      params[first.name] = part.trim()
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
    return { operation, params: validateParams(operation.params, given, operation.name) }
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

function stepFormat (format: PixelFormat, step: Step): PixelFormat {
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

async function padded (image: RawImage, r: number, step: Step, borders: Borders, crop: Rect): Promise<RawImage> {
  const pad = { top: borders.top ? r : 0, right: borders.right ? r : 0, bottom: borders.bottom ? r : 0, left: borders.left ? r : 0 }
  const input = padReplicate(image, pad)
  const out = await step.operation.apply(input, step.params)
  const result = extract(out, { x: pad.left + crop.x, y: pad.top + crop.y, width: crop.width, height: crop.height })
  // Intermediates are freed at once: a tile's worth of garbage per step adds up to collections.
  freeBuffer(input.data, [image.data, result.data])
  freeBuffer(out.data, [image.data, result.data])
  return result
}

/** One step on a whole image or a haloed tile (see PipelineOptions). */
export async function applyStep (image: RawImage, step: Step, options: PipelineOptions = {}): Promise<RawImage> {
  const r = step.operation.radius(step.params)
  const borders = options.borders ?? ALL_BORDERS
  const crop = options.crop ?? { x: 0, y: 0, width: image.width, height: image.height }
  const [colour, alpha] = splitAlpha(image)
  const colourOut = await padded(colour, r, step, borders, crop)
  let alphaOut: RawImage | undefined
  if (alpha !== undefined) {
    if (step.operation.alpha === 'keep') alphaOut = extract(alpha, crop)
    else if (step.operation.alpha === 'filter') alphaOut = await padded(alpha, r, step, borders, crop)
  }
  const out = joinAlpha(colourOut, alphaOut)
  for (const part of [colour, alpha, colourOut, alphaOut]) freeBuffer(part?.data, [image.data, out.data])
  const want = stepFormat(image, step)
  if (out.channels !== want.channels || out.depth !== want.depth || out.width !== crop.width || out.height !== crop.height) {
    throw new Error(`internal: ${step.operation.name} returned ${out.width}x${out.height} ${out.channels}ch ${out.depth}-bit`)
  }
  return out
}

/** The steps in order; only the last one crops, so every step sees the whole halo. */
export async function runPipeline (image: RawImage, steps: readonly Step[], options: PipelineOptions = {}): Promise<RawImage> {
  let current = image
  for (const [i, step] of steps.entries()) {
    const next = await applyStep(current, step, i === steps.length - 1 ? options : { borders: options.borders })
    if (current !== image) freeBuffer(current.data, [image.data, next.data])
    current = next
  }
  return current
}
