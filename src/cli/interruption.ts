import type { SubmitEvent } from '../client/submit.ts'

/** What an interrupted submit of one image says: how far the job had got, and that nothing was written. */
export class Interruption {
  private accepted = false
  private progress: { done: number, total: number } | undefined
  private receiving = false
  private readonly json: boolean
  private readonly local: boolean

  /** `local`: processed here (--local), not on a swarm. */
  constructor (options: { json: boolean, local: boolean }) {
    this.json = options.json
    this.local = options.local
  }

  /** Follows the job's events. */
  heard (event: SubmitEvent): void {
    if (event.event === 'accepted') this.accepted = true
    if (event.event === 'progress') this.progress = { done: event.done, total: event.total }
    if (event.event === 'encoding' || event.event === 'receiving') this.receiving = true
  }

  /** The one line (or, under --json, the event) said as the submit is cancelled. */
  message (): string {
    if (this.local) return 'cancelled; nothing written'
    const where = this.receiving
      ? 'the result was being received'
      : this.progress !== undefined
        ? `${this.progress.done} of ${this.progress.total} tiles done`
        : this.accepted ? 'no tile done yet' : 'the swarm had not taken the job yet'
    return `cancelled: ${where}; nothing written`
  }

  say (): void {
    if (this.json) process.stdout.write(JSON.stringify({ event: 'interrupted', ...this.progress, message: this.message() }) + '\n')
    // On a terminal, below the progress bar.
    else process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}${this.message()}\n`)
  }
}
