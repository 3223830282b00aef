import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { repeat, type Clock } from '../common/clock.ts'
import type { Startable } from '../common/startable.ts'

/** How often the peer looks whether it has gone idle after work. */
const CHECK_MS = 1000

/**
 * A full garbage collection once the peer goes idle after work. Tiles and
 * whole images churn through large buffers that V8 counts as external
 * memory; with the limit grown for them (tuneHeapForTiles), a peer that goes
 * quiet after a job would hold its last job's garbage, hundreds of MB, until
 * some later job's allocations ran a collection.
 */
export class IdleCollector implements Startable {
  private readonly clock: Clock
  private readonly busy: () => boolean
  private stopChecking: (() => void) | undefined

  constructor (components: { clock: Clock, busy: () => boolean }) {
    this.clock = components.clock
    this.busy = components.busy
  }

  async start (): Promise<void> {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    let worked = false
    this.stopChecking = repeat(this.clock, CHECK_MS, () => {
      if (this.busy()) worked = true
      else if (worked) {
        worked = false
        gc()
      }
    })
  }

  async stop (): Promise<void> {
    this.stopChecking?.()
  }
}
