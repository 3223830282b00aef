import { repeat, type Clock } from './clock.ts'
import { DEFAULT_MIN_UPLOAD_BYTES_PER_S, DEFAULT_UPLOAD_TIMEOUT_MS, UPLOAD_GRACE_MS, UPLOAD_PACE_CHECK_MS } from './defaults.ts'

/** How fast an upload must come: the page's (HTTP) and a submit's (libp2p) alike. */
export interface PaceRule {
  /** From `graceMs` on, the upload must have averaged this (0: no floor). */
  minBytesPerS: number
  graceMs: number
  /** The whole upload ends within this. */
  timeoutMs: number
}

export const DEFAULT_PACE: PaceRule = { minBytesPerS: DEFAULT_MIN_UPLOAD_BYTES_PER_S, graceMs: UPLOAD_GRACE_MS, timeoutMs: DEFAULT_UPLOAD_TIMEOUT_MS }

/** Why an upload that brought `bytes` in `elapsedMs` is too slow, or undefined while it keeps the pace. */
export function tooSlow (rule: PaceRule, elapsedMs: number, bytes: number): string | undefined {
  if (elapsedMs > rule.timeoutMs) return `the upload took over ${seconds(rule.timeoutMs)}, this peer's limit (--upload-timeout)`
  const owed = rule.minBytesPerS * (elapsedMs - rule.graceMs) / 1000
  if (rule.minBytesPerS > 0 && owed > 0 && bytes < owed) {
    return `the upload brought ${bytes} bytes in ${seconds(elapsedMs)}: this peer takes uploads that average ${Math.round(rule.minBytesPerS / 1024)} kB/s or more after their first ${seconds(rule.graceMs)} (--min-upload-kbps)`
  }
  return undefined
}

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`

/**
 * Watches an upload's bytes on `clock` and calls `slow` once, with the
 * reason, when it falls behind the rule. Stop it when the upload is in.
 */
export function watchPace (clock: Clock, rule: PaceRule, bytes: () => number, slow: (reason: string) => void): () => void {
  const start = clock.now()
  const from = bytes()
  const checkMs = Math.max(5, Math.min(UPLOAD_PACE_CHECK_MS, rule.graceMs / 4, rule.timeoutMs / 4))
  const stop = repeat(clock, checkMs, () => {
    const reason = tooSlow(rule, clock.now() - start, bytes() - from)
    if (reason === undefined) return
    stop()
    slow(reason)
  })
  return stop
}
