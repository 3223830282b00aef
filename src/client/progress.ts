import cliProgress from 'cli-progress'
import { sizeText } from '../units.ts'
import type { SubmitEvent } from './submit.ts'

const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`


/** Time left from the rate so far: '--' until there is a rate worth trusting (a tile in, a second gone). */
export function estimate (done: number, total: number, elapsedMs: number): string {
  if (done === 0 || elapsedMs < 1000 || done >= total) return '--'
  const s = Math.round((total - done) * elapsedMs / done / 1000)
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`
}

/**
 * How submit shows a job: a bar on a terminal, plain lines otherwise, JSON
 * lines with --json. Everything but JSON goes to stderr; stdout gets the result line.
 */
export function progressReporter (mode: 'json' | 'tty' | 'plain', write: (line: string) => void = line => { process.stderr.write(line + '\n') }, now: () => number = () => performance.now()): (event: SubmitEvent) => void {
  if (mode === 'json') return event => { process.stdout.write(JSON.stringify(event) + '\n') }
  let bar: cliProgress.SingleBar | undefined
  let lastPlain = -Infinity
  let lastDone = -1
  let started = 0
  let lastReceivingLine = -Infinity
  const stopBar = (): void => {
    bar?.stop()
    bar = undefined
  }
  return event => {
    switch (event.event) {
      case 'connected':
        write(`connected to ${event.peer} as ${event.client}`)
        break
      case 'note':
        write(`note: ${event.message}`)
        break
      case 'uploaded':
        write(`uploaded ${sizeText(event.bytes)}`)
        break
      case 'accepted':
        for (const note of event.notes) write(`note: ${note}`)
        write(`job ${event.jobId}: ${event.width}x${event.height} in ${plural(event.tiles, 'tile')} of ${event.tileSize} px (halo ${event.halo})${event.phases > 1 ? `, ${event.phases} phases` : ''}`)
        started = now()
        if (mode === 'tty') {
          bar = new cliProgress.SingleBar({
            format: 'tiles {bar} {value}/{total} | {rate} tiles/s | ETA {left} | {peers}',
            stream: process.stderr,
            hideCursor: true,
          }, cliProgress.Presets.shades_classic)
          // Progress counts the tiles of every phase.
          bar.start(event.tiles * event.phases, 0, { rate: '--', left: '--', peers: 'waiting for peers' })
        }
        break
      case 'progress': {
        const elapsed = now() - started
        if (bar !== undefined) {
          bar.update(event.done, { rate: elapsed >= 1000 ? (event.done / elapsed * 1000).toFixed(1) : '--', left: estimate(event.done, event.total, elapsed), peers: event.workers === 0 ? 'waiting for peers' : plural(event.workers, 'peer') })
        } else if (event.done !== lastDone && (now() - lastPlain > 1000 || event.done === event.total)) {
          lastPlain = now()
          write(`progress ${event.done}/${event.total} tiles (${plural(event.workers, 'peer')}, ETA ${estimate(event.done, event.total, elapsed)})`)
        }
        lastDone = event.done
        break
      }
      case 'encoding':
        stopBar()
        write('all tiles in; the coordinator is encoding the result')
        break
      case 'receiving':
        stopBar()
        if (event.received === event.total || now() - lastReceivingLine > 1000) {
          lastReceivingLine = now()
          write(`receiving the result: ${sizeText(event.received)} of ${sizeText(event.total)}`)
        }
        break
      case 'passed':
        stopBar()
        write(`${event.peer} cannot take the job (${event.reason}); trying another peer`)
        break
      case 'lost':
        stopBar()
        write(`coordinator ${event.coordinator} lost (${event.reason})`)
        break
      case 'resumed':
        write(`resuming the job on ${event.on}`)
        break
      case 'recovered':
        write(`${event.tiles} of ${event.total} tiles recovered from the peers that finished them; the rest are computed again`)
        break
      case 'done':
        stopBar()
        break
    }
  }
}
