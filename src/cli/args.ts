import { InvalidArgumentError, Option } from 'commander'
import { DEFAULT_DIAL_TIMEOUT_MS } from '../common/defaults.ts'
import { parseVerifyLevel, type VerifyLevel } from '../protocol/verify-level.ts'
import type { Priority } from '../protocol/constants.ts'
import { checkPriority } from '../client/options.ts'

/** A commander parser for an integer flag, with sharp's message shape. */
export function integerOption (name: string, min = 1, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`Expected integer between ${min} and ${max} for ${name} but received '${value}'`)
    return n
  }
}

/** `--verify`: a share of tiles, `all` or `off`. */
export function verifyOption (value: string): VerifyLevel {
  try {
    return parseVerifyLevel(value)
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message)
  }
}

/** `--priority`: high, normal or low. */
export function priorityOption (value: string): Priority {
  try {
    return checkPriority(value, '--priority')
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message)
  }
}

/** A repeatable flag: each adds one value. */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v]

/** Repeatable addresses and ids: each flag adds one, an environment variable may list several (comma or space between). */
export const collectList = (v: string, prev: string[] = []): string[] => [...prev, ...v.split(/[\s,]+/).filter(a => a !== '')]

/** A flag that takes one value: given twice, it is refused rather than the first silently dropped. */
export function once (flag: string) {
  return (value: string, previous: unknown): string => {
    if (previous !== undefined) throw new InvalidArgumentError(`${flag} given twice ('${String(previous)}' and '${value}'); give it once`)
    return value
  }
}

/** `--connect-timeout-ms`, as submit and status take it. */
export function connectTimeoutOption (): Option {
  return new Option('--connect-timeout-ms <ms>', 'give up on an unreachable peer after this long').argParser(integerOption('--connect-timeout-ms', 100, 600_000)).default(DEFAULT_DIAL_TIMEOUT_MS)
}
