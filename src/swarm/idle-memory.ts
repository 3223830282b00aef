import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { repeat, type Clock } from '../common/clock.ts'
import type { Startable } from '../common/startable.ts'

/** How often the peer looks whether it has gone idle after work. */
const CHECK_MS = 1000

/**
 * A full garbage collection once the peer goes idle after work, and another
 * once its cached results have outlived their lifetime. Tiles and whole
 * images churn through large buffers that V8 counts as external memory;
 * with the limit grown for them (tuneHeapForTiles), a peer that goes quiet
 * after a job would hold its last job's garbage, hundreds of MB, until some
 * later job's allocations ran a collection. The cache lets its results go
 * only when touched, so an idle peer's would stay: `expire` drops them.
 * What the collector frees goes back to the system only with glibc's
 * settings the launcher gives (bin/malloc-env.cjs).
 */
export class IdleCollector implements Startable {
  private readonly clock: Clock
  private readonly busy: () => boolean
  private readonly expireAfterMs: number
  private readonly expire: () => void
  private stopChecking: (() => void) | undefined

  constructor (components: { clock: Clock, busy: () => boolean, expireAfterMs: number, expire: () => void }) {
    this.clock = components.clock
    this.busy = components.busy
    this.expireAfterMs = components.expireAfterMs
    this.expire = components.expire
  }

  async start (): Promise<void> {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    let worked = false
    // When the peer went idle after work, until the second collection.
    let idleSince: number | undefined
    this.stopChecking = repeat(this.clock, CHECK_MS, () => {
      if (this.busy()) {
        worked = true
        idleSince = undefined
      } else if (worked) {
        worked = false
        idleSince = this.clock.now()
        gc()
      } else if (idleSince !== undefined && this.clock.now() - idleSince > this.expireAfterMs + CHECK_MS) {
        idleSince = undefined
        this.expire()
        gc()
      }
    })
  }

  async stop (): Promise<void> {
    this.stopChecking?.()
  }
}
