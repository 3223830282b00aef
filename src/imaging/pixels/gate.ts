import { AsyncLocalStorage } from 'node:async_hooks'

/** Runs `work` when a permit is free; the permit is held until it settles. */
export type Gate = <T>(work: () => Promise<T>) => Promise<T>

/** A FIFO gate with `permits` places. */
export function semaphore (permits: number): Gate {
  if (!Number.isInteger(permits) || permits < 1) throw new RangeError(`permits must be a positive integer, got ${permits}`)
  let free = permits
  const waiting: Array<() => void> = []
  return async work => {
    if (free > 0) free--
    else await new Promise<void>(resolve => waiting.push(resolve))
    try {
      return await work()
    } finally {
      const next = waiting.shift()
      if (next !== undefined) next()
      else free++
    }
  }
}

/** What a unit of work waited for a place over its passes through metered gates. */
export interface Waits {
  ms: number
}

const unitWaits = new AsyncLocalStorage<Waits>()

/** Runs `work`, adding to `waits` what its passes through metered gates waited. */
export async function meteringWaits<T> (waits: Waits, work: () => Promise<T>): Promise<T> {
  return await unitWaits.run(waits, work)
}

/**
 * A FIFO gate with `permits` places, each pass's wait for a place added to
 * the caller's `Waits` (meteringWaits): what a job's unit took is then its
 * own time, not that of the others' passes it queued behind.
 */
export function meteredSemaphore (permits: number, now: () => number): Gate {
  const gate = semaphore(permits)
  return async work => {
    const waits = unitWaits.getStore()
    const called = now()
    return await gate(async () => {
      if (waits !== undefined) waits.ms += now() - called
      return await work()
    })
  }
}

/**
 * The gate libvips passes go through in the current async context: a worker
 * sets it around a tile so that its slots bound the libvips threads busy at
 * once, while the JavaScript around them (copies, checksums, the network)
 * overlaps with the next tile's pass.
 */
const passGate = new AsyncLocalStorage<Gate>()

export async function withPassGate<T> (gate: Gate | undefined, work: () => Promise<T>): Promise<T> {
  return gate === undefined ? await work() : await passGate.run(gate, work)
}

export async function gatedPass<T> (work: () => Promise<T>): Promise<T> {
  const gate = passGate.getStore()
  return gate === undefined ? await work() : await gate(work)
}
