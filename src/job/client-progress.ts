import { repeat, type Clock } from '../common/clock.ts'
import { PROGRESS_HEARTBEAT_MS } from '../common/defaults.ts'
import type { SubmitServerMessage } from '../protocol/messages.ts'
import type { Outgoing } from '../protocol/wire.ts'

export type ProgressMessage = Outgoing<Extract<SubmitServerMessage, { type: 'progress' }>>

/**
 * What a tiled job's client hears of its progress: each report as it comes,
 * and the last one again at least every PROGRESS_HEARTBEAT_MS whatever the
 * phase, as silence means a lost coordinator.
 */
export class ClientProgress {
  /** What the client last heard: the counts, not the tiles placed (the heartbeat repeats only those). */
  last: ProgressMessage | undefined
  /** When it last heard. */
  at = -Infinity
  private readonly clock: Clock
  private readonly send: (message: ProgressMessage) => void
  private stopHeartbeat: (() => void) | undefined

  constructor (clock: Clock, send: (message: ProgressMessage) => void) {
    this.clock = clock
    this.send = send
  }

  start (): void {
    this.stopHeartbeat ??= repeat(this.clock, PROGRESS_HEARTBEAT_MS / 5, () => {
      if (this.last !== undefined && this.clock.now() - this.at >= PROGRESS_HEARTBEAT_MS) this.report(this.last)
    })
  }

  report (progress: ProgressMessage): void {
    const { placed: _told, ...counts } = progress
    this.last = counts
    this.at = this.clock.now()
    this.send(progress)
  }

  stop (): void {
    this.stopHeartbeat?.()
  }
}
