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
 * What the collector frees goes back to the system with the allocator the
 * launcher gives (bin/tileswarm.cjs).
 */
export class IdleCollector implements Startable {
  /**
   * The collectors of every peer in this process (one, run as a command;
   * many in a simulator or a library user's process): a full collection
   * stops all of them for up to a second, so it runs only while none is busy.
   */
  private static readonly here = new Set<IdleCollector>()
  private readonly clock: Clock
  private readonly busy: () => boolean
  private readonly expireAfterMs: number
  private readonly expire: () => void
  private collect: (() => void) | undefined
  private stopChecking: (() => void) | undefined

  constructor (components: { clock: Clock, busy: () => boolean, expireAfterMs: number, expire: () => void, collect?: () => void }) {
    this.clock = components.clock
    this.busy = components.busy
    this.expireAfterMs = components.expireAfterMs
    this.expire = components.expire
    this.collect = components.collect
  }

  async start (): Promise<void> {
    if (this.collect === undefined) {
      setFlagsFromString('--expose-gc')
      this.collect = runInNewContext('gc') as () => void
    }
    IdleCollector.here.add(this)
    let worked = false
    // When the peer went idle after work, until its expired results are dropped.
    let idleSince: number | undefined
    this.stopChecking = repeat(this.clock, CHECK_MS, () => {
      if (this.busy()) {
        worked = true
        idleSince = undefined
      } else if (worked) {
        worked = false
        idleSince = this.clock.now()
        // With another peer here busy, its own going idle collects for both.
        this.collectIfAllIdle()
      } else if (idleSince !== undefined && this.clock.now() - idleSince > this.expireAfterMs + CHECK_MS) {
        this.expire()
        if (this.collectIfAllIdle()) idleSince = undefined
      }
    })
  }

  async stop (): Promise<void> {
    this.stopChecking?.()
    IdleCollector.here.delete(this)
  }

  private collectIfAllIdle (): boolean {
    for (const c of IdleCollector.here) if (c.busy()) return false
    this.collect!()
    return true
  }
}
