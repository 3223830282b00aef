import { InvalidParameterError } from '../../common/errors.ts'
import { didYouMean } from '../../common/suggest.ts'

/**
 * Declarative operation parameters: one description serves validation,
 * `--list-ops`, and the wire format (params travel as plain JSON values).
 */
export type ParamSpec = NumberParam | KernelParam | ColourParam | ChoiceParam

interface BaseParam {
  name: string
  description: string
}

export interface NumberParam extends BaseParam {
  kind: 'number'
  min: number
  max: number
  default: number
  integer?: boolean
  odd?: boolean
  /** 'auto' is accepted too: the operation works the value out from the image. */
  auto?: boolean
}

/** One of a few words. */
export interface ChoiceParam extends BaseParam {
  kind: 'choice'
  choices: readonly string[]
  default: string
}

/** A square kernel of odd size, given row by row. */
export interface KernelParam extends BaseParam {
  kind: 'kernel'
  maxSize: number
  default: number[]
}

/** A colour as #rrggbb. */
export interface ColourParam extends BaseParam {
  kind: 'colour'
  default: string
}

export type ParamValue = number | number[] | string
export type Params = Record<string, ParamValue>

/** A value as the user gave it: a number as a number (from the command line's text too), other text quoted. */
export function shownValue (value: unknown): string {
  if (typeof value === 'string') {
    const text = value.trim()
    if (text === '') return 'nothing'
    return Number.isFinite(Number(text)) ? String(Number(text)) : JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)
  }
  if (Array.isArray(value)) return `a list of ${value.length}`
  if (value === undefined || value === null) return 'nothing'
  if (typeof value === 'object') return 'an object'
  return String(value)
}

/** One line in plain words: which parameter, what it must be, what came. */
export function expected (what: string, param: string, value: unknown, owner?: string): InvalidParameterError {
  const where = owner === undefined ? param : `${param} of ${owner}`
  return new InvalidParameterError(`${where} must be ${what}, got ${shownValue(value)}`)
}

export function rangeText (spec: NumberParam): string {
  const kind = spec.odd === true ? 'an odd integer' : spec.integer === true ? 'an integer' : 'a number'
  return `${kind} between ${spec.min} and ${spec.max}${spec.auto === true ? ' or auto' : ''}`
}

function choiceText (spec: ChoiceParam): string {
  return `one of ${spec.choices.join(', ')}`
}

/** Text form of a value from the command line; JSON values pass through. */
function coerceNumber (value: unknown): unknown {
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value)
  return value
}

function coerceKernel (value: unknown): unknown {
  if (typeof value !== 'string') return value
  const body = value.trim().replace(/^\[/, '').replace(/\]$/, '')
  const parts = body.split(/[\s,;]+/).filter(p => p !== '')
  const numbers = parts.map(Number)
  return numbers.every(Number.isFinite) && numbers.length > 0 ? numbers : value
}

export function validateParam (spec: ParamSpec, raw: unknown, owner: string): ParamValue {
  switch (spec.kind) {
    case 'number': {
      if (spec.auto === true && typeof raw === 'string' && raw.trim().toLowerCase() === 'auto') return 'auto'
      const value = coerceNumber(raw)
      const ok = typeof value === 'number' && Number.isFinite(value) && value >= spec.min && value <= spec.max &&
        (spec.integer !== true || Number.isInteger(value)) &&
        (spec.odd !== true || (Number.isInteger(value) && value % 2 === 1))
      if (!ok) throw expected(rangeText(spec), spec.name, raw, owner)
      return value
    }
    case 'kernel': {
      const value = coerceKernel(raw)
      const what = `a square kernel of 9, 25, 49 ... ${spec.maxSize * spec.maxSize} numbers (odd size 3x3 to ${spec.maxSize}x${spec.maxSize})`
      if (!Array.isArray(value) || !value.every(v => typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= 1e6)) throw expected(what, spec.name, raw, owner)
      const size = Math.round(Math.sqrt(value.length))
      if (size * size !== value.length || size % 2 !== 1 || size < 3 || size > spec.maxSize) throw expected(what, spec.name, raw, owner)
      return value
    }
    case 'colour': {
      if (typeof raw !== 'string' || !/^#?[0-9a-fA-F]{6}$/.test(raw)) throw expected('a colour as #rrggbb', spec.name, raw, owner)
      return raw.startsWith('#') ? raw.toLowerCase() : `#${raw.toLowerCase()}`
    }
    case 'choice': {
      const value = typeof raw === 'string' ? raw.trim().toLowerCase() : raw
      if (typeof value !== 'string' || !spec.choices.includes(value)) throw expected(choiceText(spec), spec.name, raw, owner)
      return value
    }
  }
}

/** Fills defaults and validates every parameter; unknown names are refused. */
export function validateParams (specs: readonly ParamSpec[], given: Record<string, unknown>, owner: string): Params {
  const out: Params = {}
  for (const name of Object.keys(given)) {
    if (!specs.some(s => s.name === name)) {
      const known = specs.length === 0 ? 'it takes no parameters' : `its parameters are ${specs.map(s => s.name).join(', ')}`
      throw new InvalidParameterError(`Unknown parameter '${name}'${didYouMean(name, specs.map(s => s.name))} for ${owner}: ${known}`)
    }
  }
  for (const spec of specs) {
    out[spec.name] = Object.hasOwn(given, spec.name) ? validateParam(spec, given[spec.name], owner) : spec.default
  }
  return out
}

export function paramUsage (spec: ParamSpec): string {
  switch (spec.kind) {
    case 'number': return `${spec.name}=<${rangeText(spec).replace(/^an? /, '')}, default ${spec.default}>`
    case 'kernel': return `${spec.name}=<[k1,k2,...] square, odd size 3x3 to ${spec.maxSize}x${spec.maxSize}, default [${spec.default.join(',')}]>`
    case 'colour': return `${spec.name}=<#rrggbb, default ${spec.default}>`
    case 'choice': return `${spec.name}=<${spec.choices.join('|')}, default ${spec.default}>`
  }
}
