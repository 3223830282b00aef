import cliProgress from 'cli-progress'
import type { SubmitEvent } from './submit.ts'

/**
 * How submit shows a job: a bar on a terminal, plain lines otherwise, JSON
 * lines with --json. Everything but JSON goes to stderr; stdout gets the result line.
 */
export function progressReporter (mode: 'json' | 'tty' | 'plain', write: (line: string) => void = line => { process.stderr.write(line + '\n') }): (event: SubmitEvent) => void {
  if (mode === 'json') return event => { process.stdout.write(JSON.stringify(event) + '\n') }
  let bar: cliProgress.SingleBar | undefined
  let lastPlain = 0
  let lastDone = -1
  let started = 0
  return event => {
    switch (event.event) {
      case 'connected':
        write(`connected to ${event.peer} as ${event.client}`)
        break
      case 'uploaded':
        write(`uploaded ${event.bytes} bytes`)
        break
      case 'accepted':
        for (const note of event.notes) write(`note: ${note}`)
        write(`job ${event.jobId}: ${event.width}x${event.height} in ${event.tiles} tiles of ${event.tileSize} px (halo ${event.halo})`)
        started = performance.now()
        if (mode === 'tty') {
          bar = new cliProgress.SingleBar({
            format: 'tiles {bar} {value}/{total} | {rate} tiles/s | ETA {eta_formatted} | {workers} peers',
            stream: process.stderr,
            hideCursor: true,
          }, cliProgress.Presets.shades_classic)
          bar.start(event.tiles, 0, { rate: '0.0', workers: 0 })
        }
        break
      case 'progress': {
        if (bar !== undefined) {
          const elapsed = (performance.now() - started) / 1000
          bar.update(event.done, { rate: elapsed > 0 ? (event.done / elapsed).toFixed(1) : '0.0', workers: event.workers })
        } else if (event.done !== lastDone && (performance.now() - lastPlain > 1000 || event.done === event.total)) {
          lastPlain = performance.now()
          write(`progress ${event.done}/${event.total} tiles (${event.workers} peers)`)
        }
        lastDone = event.done
        break
      }
      case 'done':
        bar?.stop()
        break
    }
  }
}
