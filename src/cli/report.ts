import { isUserFacing, oneLine } from '../common/errors.ts'

/** How the CLI says what ends it: set from the running command's flags. */
export interface Reporting {
  /** --debug: stack traces on errors. */
  debug: boolean
  /** --json: errors too are one JSON event on stdout, like every other event. */
  json: boolean
  /** What a batch says when it is interrupted. */
  onInterrupt?: () => void
}

/** Says why the CLI stops, on stderr (or as a JSON event under --json), and exits 1. */
export function fail (reporting: Reporting, err: unknown): never {
  const { debug, json } = reporting
  const message = err instanceof Error ? (debug || !isUserFacing(err) ? (err.stack ?? err.message) : oneLine(err.message)) : String(err)
  if (json) process.stdout.write(JSON.stringify({ event: 'error', name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? oneLine(err.message) : String(err) }) + '\n')
  if (!json || debug) process.stderr.write(`tileswarm: ${message}\n`)
  process.exit(1)
}
