import type { Clock } from '../../src/common/clock.ts'

/** Time that moves only when the test says so. */
export function manualClock (): Clock & { advance: (ms: number) => void } {
  let now = 0
  const timers = new Map<number, { at: number, fn: () => void }>()
  let next = 0
  return {
    now: () => now,
    setTimeout: (fn, ms) => { timers.set(++next, { at: now + ms, fn }); return next },
    clearTimeout: handle => { timers.delete(handle as number) },
    advance: ms => {
      now += ms
      for (const [id, timer] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (timer.at <= now && timers.delete(id)) timer.fn()
      }
    },
  }
}
