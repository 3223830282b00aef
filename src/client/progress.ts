import cliProgress from 'cli-progress'
import { PLAIN_PROGRESS_LINE_MS, RATE_SHOWN_AFTER_MS } from '../common/defaults.ts'
import { sizeText } from '../common/units.ts'
import type { SubmitEvent } from './submit.ts'
import type { VerifyFigures } from '../protocol/verify-level.ts'

export const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`

/** Time left from the rate so far: '--' until there is a rate worth trusting (a tile in, a second gone). */
export function estimate (done: number, total: number, elapsedMs: number): string {
  if (done === 0 || elapsedMs < RATE_SHOWN_AFTER_MS || done >= total) return '--'
  const s = Math.round((total - done) * elapsedMs / done / 1000)
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`
}

export type Mode = 'json' | 'tty' | 'plain'

/** What `tileswarm watch` says of a job it follows: found, its progress (as submit's), its end. */
export type WatchEvent =
  | { event: 'watching', jobId: string, kind: 'tiles' | 'batch', coordinator: string, done: number, total: number }
  | Extract<SubmitEvent, { event: 'progress' }>
  | { event: 'ended', jobId: string, outcome: 'done' | 'failed' | 'cancelled', ms: number }

/**
 * How submit shows a job: a bar on a terminal, plain lines otherwise, JSON
 * lines with --json. Everything but JSON goes to stderr; stdout gets the result line.
 */
export function progressReporter (mode: Mode, write: (line: string) => void = line => { process.stderr.write(line + '\n') }, now: () => number = () => performance.now()): (event: SubmitEvent | WatchEvent) => void {
  if (mode === 'json') return event => { process.stdout.write(JSON.stringify(event) + '\n') }
  const view = new JobProgress(mode === 'tty', write, now)
  return event => { view.show(event) }
}

/** Events said once the tiles are in, or of a coordinator left behind: the bar goes first. */
const ENDS_THE_BAR = new Set<(SubmitEvent | WatchEvent)['event']>(['encoding', 'receiving', 'passed', 'lost', 'done', 'ended'])

/** One job's events as a person reads them: a line each, and the tiles as a bar or a line now and then. */
class JobProgress {
  private readonly tty: boolean
  private readonly write: (line: string) => void
  private readonly now: () => number
  private bar: cliProgress.SingleBar | undefined
  private lastPlain = -Infinity
  private lastDone = -1
  private started = 0
  private lastReceivingLine = -Infinity

  constructor (tty: boolean, write: (line: string) => void, now: () => number) {
    this.tty = tty
    this.write = write
    this.now = now
  }

  show (event: SubmitEvent | WatchEvent): void {
    if (ENDS_THE_BAR.has(event.event)) this.stopBar()
    switch (event.event) {
      case 'connected': return this.write(`connected to ${event.peer} as ${event.client}`)
      case 'note': return this.write(`note: ${event.message}`)
      case 'uploaded': return this.write(`uploaded ${sizeText(event.bytes)}`)
      case 'accepted': return this.accepted(event)
      case 'progress': return this.progress(event)
      case 'encoding': return this.write('all tiles in; the coordinator is encoding the result')
      case 'receiving': return this.receiving(event)
      case 'passed': return this.write(`${event.peer} cannot take the job (${event.reason}); trying another peer`)
      case 'lost': return this.write(`coordinator ${event.coordinator} lost (${event.reason})`)
      case 'resumed': return this.write(`resuming the job on ${event.on}`)
      case 'recovered': return this.write(`${event.phases !== undefined ? `phase ${event.phase! + 1} of ${event.phases}: ` : ''}${event.tiles} of ${event.total} tiles recovered from the peers that finished them; the rest are computed again`)
      case 'excluded': return this.write(`excluded peer ${event.peer}: ${event.wrong > 0 ? 'its result lost a vote against other peers\'' : 'caught giving wrong results in an earlier job'}; what it delivered is computed again`)
      case 'done': return
      case 'watching': return this.watching(event)
      case 'ended': return this.write(`job ${event.jobId}: ${event.outcome} after ${(event.ms / 1000).toFixed(1)} s`)
    }
  }

  /** A job followed from elsewhere: its bar starts where the job is. */
  private watching (event: Extract<WatchEvent, { event: 'watching' }>): void {
    this.write(`job ${event.jobId}: ${event.kind === 'batch' ? 'a batch' : 'a tiled job'} coordinated by ${event.coordinator}, ${event.done}/${event.total} done`)
    this.startBar(event.total, event.done, event.kind === 'batch' ? 'images' : 'tiles')
  }

  private accepted (event: Extract<SubmitEvent, { event: 'accepted' }>): void {
    for (const note of event.notes) this.write(`note: ${note}`)
    this.write(`job ${event.jobId}: ${event.width}x${event.height} in ${plural(event.tiles, 'tile')} of ${event.tileSize} px (halo ${event.halo})${event.phases > 1 ? `, ${event.phases} phases` : ''}`)
    // Progress counts the tiles of every phase.
    this.startBar(event.tiles * event.phases, 0, 'tiles')
  }

  private startBar (total: number, done: number, units: string): void {
    this.started = this.now()
    if (!this.tty) return
    this.bar = new cliProgress.SingleBar({
      format: `${units} {bar} {value}/{total} | {rate} ${units}/s | ETA {left} | {peers}{checks}`,
      stream: process.stderr,
      hideCursor: true,
    }, cliProgress.Presets.shades_classic)
    this.bar.start(total, done, { rate: '--', left: '--', peers: 'waiting for peers', checks: '' })
  }

  private progress (event: Extract<SubmitEvent, { event: 'progress' }>): void {
    const elapsed = this.now() - this.started
    if (this.bar !== undefined) {
      if (event.total !== this.bar.getTotal()) this.bar.setTotal(event.total)
      this.bar.update(event.done, { rate: elapsed >= RATE_SHOWN_AFTER_MS ? (event.done / elapsed * 1000).toFixed(1) : '--', left: estimate(event.done, event.total, elapsed), peers: event.workers === 0 ? 'waiting for peers' : plural(event.workers, 'peer'), checks: event.verify !== undefined ? ` | ${checksText(event.verify)}` : '' })
    } else if (event.done !== this.lastDone && (this.now() - this.lastPlain > PLAIN_PROGRESS_LINE_MS || event.done === event.total)) {
      this.lastPlain = this.now()
      this.write(`progress ${event.done}/${event.total} tiles (${plural(event.workers, 'peer')}, ETA ${estimate(event.done, event.total, elapsed)}${event.verify !== undefined ? `, ${checksText(event.verify)}` : ''})`)
    }
    this.lastDone = event.done
  }

  private receiving (event: Extract<SubmitEvent, { event: 'receiving' }>): void {
    if (event.received !== event.total && this.now() - this.lastReceivingLine <= PLAIN_PROGRESS_LINE_MS) return
    this.lastReceivingLine = this.now()
    this.write(`receiving the result: ${sizeText(event.received)} of ${sizeText(event.total)}`)
  }

  private stopBar (): void {
    this.bar?.stop()
    this.bar = undefined
  }
}

/** The checks so far, short: tiles checked, and any disagreement or exclusion. */
export function checksText (v: VerifyFigures): string {
  const excluded = Object.keys(v.excluded).length
  return `${v.checked} checked${v.disagreements > 0 ? `, ${plural(v.disagreements, 'disagreement')}` : ''}${excluded > 0 ? `, ${excluded} excluded` : ''}${v.skipped > 0 ? `, ${v.skipped} unchecked` : ''}`
}

/** What the checks came to, for the result line: tiles checked, extra work, disagreements, and the peers excluded. */
export function verifyResultText (v: VerifyFigures, tiles: number): string {
  const excluded = Object.entries(v.excluded)
  return `verified ${plural(v.checked, 'tile')} by a second computation (${v.extra} extra, ${tiles > 0 ? (v.extra / tiles * 100).toFixed(1) : '0'}% more work)${v.disagreements > 0 ? `, ${plural(v.disagreements, 'disagreement')}` : ''}${v.skipped > 0 ? `, ${plural(v.skipped, 'tile')} taken unchecked (no other peer could check them)` : ''}${excluded.length > 0 ? `; excluded ${excluded.map(([p, n]) => `${p} (${n} wrong)`).join(', ')}` : ''}`
}
