import { LimitExceededError, TileswarmError } from '../common/errors.ts'

/**
 * Memory that ran out. sharp rejects with a plain Error that carries
 * libvips' message and no name or code, so for libvips the message is all
 * there is to tell it by; JavaScript's own allocations throw a RangeError.
 */
export function isOutOfMemory (err: unknown): boolean {
  return err instanceof RangeError || /out of memory|allocation failed|cannot allocate/i.test((err as Error).message)
}

/**
 * A failure that is this peer's own trouble, not the unit's: past this
 * peer's limits, or its memory. Another peer may do the unit.
 */
export function isThisPeersTrouble (err: unknown): boolean {
  return err instanceof LimitExceededError || isOutOfMemory(err)
}

/**
 * Computing that threw for a reason worth telling the coordinator (a sharp
 * error, not ours: not the network, a limit or memory), which fails the job
 * if it is not this peer's trouble alone.
 */
export function isComputeFailure (err: unknown): boolean {
  return !(err instanceof TileswarmError) && !isOutOfMemory(err)
}
