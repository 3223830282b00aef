import { InvalidArgumentError } from 'commander'
import { parseVerifyLevel, type VerifyLevel } from '../protocol/verify-level.ts'

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
