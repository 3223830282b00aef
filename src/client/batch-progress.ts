import cliProgress from 'cli-progress'
import { PLAIN_PROGRESS_LINE_MS, RATE_SHOWN_AFTER_MS } from '../common/defaults.ts'
import type { BatchEvent } from './batch-events.ts'
import { estimate, plural, type Mode } from './progress.ts'

/** A few paths, and how many more. */
function named (paths: string[]): string {
  return `${paths.slice(0, 3).join(', ')}${paths.length > 3 ? `, and ${paths.length - 3} more` : ''}`
}

/** Images a second and megapixels a second, from the counts so far. */
function rates (done: number, megapixels: number, elapsedMs: number): { images: string, mp: string } {
  if (elapsedMs < RATE_SHOWN_AFTER_MS || done === 0) return { images: '--', mp: '--' }
  return { images: (done / elapsedMs * 1000).toFixed(2), mp: (megapixels / elapsedMs * 1000).toFixed(1) }
}

/**
 * How submit shows a batch: a bar of images on a terminal (failures printed
 * above it as they happen), a line a second otherwise, JSON lines with
 * --json (one event per image). All but JSON go to stderr.
 */
export function batchReporter (mode: Mode, write: (line: string) => void = line => { process.stderr.write(line + '\n') }, now: () => number = () => performance.now()): (event: BatchEvent) => void {
  if (mode === 'json') return event => { process.stdout.write(JSON.stringify(event) + '\n') }
  const view = new BatchProgress(mode === 'tty', write, now)
  return event => { view.show(event) }
}

/** A batch's events as a person reads them: a line each (above the bar, on a terminal), and the images as a bar or a line a second. */
class BatchProgress {
  private readonly tty: boolean
  private readonly write: (line: string) => void
  private readonly now: () => number
  private bars: cliProgress.MultiBar | undefined
  private bar: cliProgress.SingleBar | undefined
  private started: number
  private lastPlain = -Infinity
  private tiledNote = ''

  constructor (tty: boolean, write: (line: string) => void, now: () => number) {
    this.tty = tty
    this.write = write
    this.now = now
    this.started = now()
  }

  show (event: BatchEvent): void {
    switch (event.event) {
      case 'batch': return this.begin(event)
      case 'connected': return this.say(`connected to ${event.peer} as ${event.client}`)
      case 'note': return this.say(`note: ${event.message}`)
      case 'image-failed': return this.say(`failed: ${event.input}: ${event.message}`)
      case 'passed': return this.say(`${event.peer} cannot take the batch (${event.reason}); trying another peer`)
      case 'lost': return this.say(`coordinator ${event.coordinator} lost (${event.reason})`)
      case 'resumed': return this.say(`resuming the ${plural(event.images, 'image')} not yet back on ${event.on}`)
      case 'tiles':
        this.tiledNote = ` | ${event.input}: tile ${event.done}/${event.total}`
        this.bar?.update({ tiles: this.tiledNote })
        return
      case 'batch-progress': return this.progress(event)
      case 'batch-done':
        this.bars?.stop()
        this.bars = undefined
        this.bar = undefined
    }
  }

  /** Above the bar while there is one. */
  private say (line: string): void {
    if (this.bars !== undefined) this.bars.log(line + '\n')
    else this.write(line)
  }

  private begin (event: Extract<BatchEvent, { event: 'batch' }>): void {
    this.write(`batch of ${plural(event.images, 'image')}${event.skipped > 0 ? ` (${event.skipped} skipped: their outputs exist)` : ''}${event.tiled > 0 ? `; ${event.tiled} over the --tile-above-mp size go tiled, one job each` : ''}`)
    if (event.leftOut.length > 0) this.write(`left out: ${plural(event.leftOut.length, 'file')} not images or hidden (${named(event.leftOut)})`)
    if (event.folders.length > 0) this.write(`left out: ${plural(event.folders.length, 'subfolder')} (${named(event.folders)}): -r takes them in`)
    this.started = this.now()
    if (!this.tty || event.images === 0) return
    this.bars = new cliProgress.MultiBar({ format: 'images {bar} {value}/{total} | {rate} img/s | {mp} MP/s | ETA {left} | {peers}{tiles}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
    this.bar = this.bars.create(event.images, 0, { rate: '--', mp: '--', left: '--', peers: 'waiting for peers', tiles: '' })
  }

  private progress (event: Extract<BatchEvent, { event: 'batch-progress' }>): void {
    const elapsed = this.now() - this.started
    const settled = event.done + event.failed
    const r = rates(event.done, event.megapixels, elapsed)
    const peers = event.workers === 0 ? 'waiting for peers' : plural(event.workers, 'peer')
    if (this.bar !== undefined) this.bar.update(settled, { rate: r.images, mp: r.mp, left: estimate(settled, event.total, elapsed), peers, tiles: this.tiledNote })
    else if (settled === event.total || this.now() - this.lastPlain > PLAIN_PROGRESS_LINE_MS) {
      this.lastPlain = this.now()
      this.write(`images ${settled}/${event.total}${event.failed > 0 ? ` (${event.failed} failed)` : ''} | ${r.images} img/s | ${r.mp} MP/s | ETA ${estimate(settled, event.total, elapsed)} | ${peers}`)
    }
  }
}
