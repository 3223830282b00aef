import { WEB_JOB_KEEP_MS, WEB_JOBS_KEPT_MAX, WEB_JOBS_PER_CLIENT, WEB_RESULTS_CLIENT_SHARE } from '../common/defaults.ts'

/** What the keeping rule reads of an ended page job. */
export interface Kept {
  id: string
  /** The address it came from. */
  client: string
  endedAt: number
  /** Its result on disk (0 for a failed job). */
  bytes: number
}

export interface KeepLimits {
  /** The results' disk budget (--web-results-mb). */
  resultsBytes: number
  keepMs?: number
  perClient?: number
  clientShare?: number
  keptMax?: number
}

/**
 * Which ended jobs go now. A result is kept its hour; before that it goes
 * only when the disk budget runs out (the oldest first, whoever sent them),
 * or when its own client address holds more than its share (WEB_JOBS_PER_CLIENT
 * jobs, or WEB_RESULTS_CLIENT_SHARE of the budget): then that client's own
 * oldest go, never another's. A flood of small jobs evicts only the flooder's.
 */
export function toDrop (ended: Kept[], now: number, limits: KeepLimits): Set<string> {
  const keepMs = limits.keepMs ?? WEB_JOB_KEEP_MS
  const perClient = limits.perClient ?? WEB_JOBS_PER_CLIENT
  const clientBytes = limits.resultsBytes * (limits.clientShare ?? WEB_RESULTS_CLIENT_SHARE)
  const drop = new Set<string>()
  const oldestFirst = [...ended].sort((a, b) => a.endedAt - b.endedAt)
  for (const job of oldestFirst) if (now - job.endedAt > keepMs) drop.add(job.id)
  // Each client's share, counted from its newest back: past the share, its older ones go.
  const held = new Map<string, { jobs: number, bytes: number }>()
  for (const job of [...oldestFirst].reverse()) {
    if (drop.has(job.id)) continue
    const h = held.get(job.client) ?? { jobs: 0, bytes: 0 }
    h.jobs++
    h.bytes += job.bytes
    held.set(job.client, h)
    if (h.jobs > perClient || (h.jobs > 1 && h.bytes > clientBytes)) drop.add(job.id)
  }
  // Then the budgets, whoever's: the oldest go until the rest fit (the newest stays, even alone over it).
  let bytes = 0
  let count = 0
  for (const job of oldestFirst) if (!drop.has(job.id)) { bytes += job.bytes; count++ }
  for (const job of oldestFirst.slice(0, -1)) {
    if (bytes <= limits.resultsBytes && count <= (limits.keptMax ?? WEB_JOBS_KEPT_MAX)) break
    if (drop.has(job.id)) continue
    drop.add(job.id)
    bytes -= job.bytes
    count--
  }
  return drop
}
