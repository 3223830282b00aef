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

/**
 * The gate libvips passes go through in the current async context: a worker
 * sets it around a tile so that its slots bound the libvips threads busy at
 * once, while the JavaScript around them (copies, checksums, the network)
 * overlaps with the next tile's pass.
 */
/** What a unit of work waited for over its passes through metered gates: a permit, then a thread. */
export interface Waits {
  ms: number
}

const unitWaits = new AsyncLocalStorage<Waits>()

/** Runs `work`, adding to `waits` what its passes through metered gates waited. */
export async function meteringWaits<T> (waits: Waits, work: () => Promise<T>): Promise<T> {
  return await unitWaits.run(waits, work)
}

/** Departures kept past what the passes under way need, before the list is trimmed. */
const DEPARTURES_KEPT = 256

/**
 * A FIFO gate with `permits` places in front of a FIFO pool of `threads`
 * (libuv's, which runs sharp's work): more places than threads keep a pass
 * queued in the pool, to start the moment a thread frees. Each pass's wait,
 * for a place and then for a thread, is added to the caller's `Waits`
 * (meteringWaits): the pool's threads are taken in arrival order, so the
 * i-th pass starts when it came in or when the (i - threads)-th pass left,
 * whichever is later. What a job's unit took is then its own time, not the
 * others' it queued behind.
 */
export function meteredSemaphore (permits: number, threads: number, now: () => number): Gate {
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`)
  const gate = semaphore(permits)
  let arrivals = 0
  /** Departure times in the order they happened: departures[j - base] is the j-th. */
  let departures: number[] = []
  let base = 0
  const underWay = new Set<number>()
  return async work => {
    const waits = unitWaits.getStore()
    const called = now()
    return await gate(async () => {
      const i = arrivals++
      underWay.add(i)
      const admitted = now()
      try {
        return await work()
      } finally {
        underWay.delete(i)
        const freedBy = i - threads - base
        const start = Math.max(admitted, freedBy >= 0 && freedBy < departures.length ? departures[freedBy]! : -Infinity)
        departures.push(now())
        if (waits !== undefined) waits.ms += start - called
        if (departures.length > DEPARTURES_KEPT) {
          const needed = Math.min(arrivals, ...underWay) - threads
          if (needed > base) {
            departures = departures.slice(needed - base)
            base = needed
          }
        }
      }
    })
  }
}

const passGate = new AsyncLocalStorage<Gate>()

export async function withPassGate<T> (gate: Gate | undefined, work: () => Promise<T>): Promise<T> {
  return gate === undefined ? await work() : await passGate.run(gate, work)
}

export async function gatedPass<T> (work: () => Promise<T>): Promise<T> {
  const gate = passGate.getStore()
  return gate === undefined ? await work() : await gate(work)
}
