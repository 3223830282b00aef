/** Time, injected: the coordinator, the job host, the worker and discovery never read the wall clock themselves. */
export interface Clock {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms)
    t.unref()
    return t
  },
  clearTimeout: handle => { clearTimeout(handle as NodeJS.Timeout) },
}

/** Calls `fn` every `ms` on `clock` until the returned function is called. */
export function repeat (clock: Clock, ms: number, fn: () => void): () => void {
  let handle: unknown
  let stopped = false
  const tick = (): void => {
    if (stopped) return
    fn()
    if (!stopped) handle = clock.setTimeout(tick, ms)
  }
  handle = clock.setTimeout(tick, ms)
  return () => {
    stopped = true
    clock.clearTimeout(handle)
  }
}

/** Resolves when `signal` aborts (at once if it has). */
export async function whenAborted (signal: AbortSignal): Promise<void> {
  if (signal.aborted) return
  await new Promise(resolve => { signal.addEventListener('abort', resolve, { once: true }) })
}
