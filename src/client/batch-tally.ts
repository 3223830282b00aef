import { oneLine } from '../common/errors.ts'
import type { BatchEvent, BatchSummary } from './batch-events.ts'

/** Counts as the batch goes; says so to the user. */
export class Tally {
  done = 0
  failures: Array<{ input: string, message: string }> = []
  pixelsDone = 0
  /** Peers at work, as the coordinator last said (or, before it says, those that delivered). */
  workers = 0
  private told = false
  private readonly by = new Set<string>()
  private readonly total: number
  private readonly emit: (e: BatchEvent) => void
  constructor (total: number, emit: (e: BatchEvent) => void) {
    this.total = total
    this.emit = emit
  }

  ok (pixels: number, by: string[]): void {
    for (const peer of by) this.by.add(peer)
    if (!this.told) this.workers = this.by.size
    this.done++
    this.pixelsDone += pixels
    this.progress()
  }

  /** The coordinator's count of peers at work. */
  heard (workers: number): void {
    this.told = true
    this.workers = workers
    this.progress()
  }

  failed (input: string, err: { name: string, message: string }): void {
    this.failures.push({ input, message: oneLine(err.message) })
    this.emit({ event: 'image-failed', input, name: err.name, message: oneLine(err.message) })
    this.progress()
  }

  /** The batch is over: its summary, said as the last event. */
  summary (skipped: number, started: number): BatchSummary {
    const summary = { done: this.done, skipped, failures: this.failures, ms: performance.now() - started, megapixels: this.pixelsDone / 1e6 }
    this.emit({ event: 'batch-done', done: summary.done, skipped, failed: summary.failures.length, ms: summary.ms, megapixels: summary.megapixels, failures: summary.failures })
    return summary
  }

  progress (): void {
    this.emit({ event: 'batch-progress', done: this.done, failed: this.failures.length, total: this.total, megapixels: this.pixelsDone / 1e6, workers: this.workers })
  }
}
