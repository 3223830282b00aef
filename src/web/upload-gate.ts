import type { IncomingMessage } from 'node:http'
import type { Context, MiddlewareHandler } from 'hono'
import { systemClock, type Clock } from '../common/clock.ts'
import { WEB_MAX_UPLOADS, WEB_MAX_UPLOADS_PER_CLIENT } from '../common/defaults.ts'
import { watchPace, type PaceRule } from '../common/upload-pace.ts'
import { refuse } from './refuse.ts'

/** The address a request came from (the socket's, not a header anyone could write). */
export function clientAddress (c: Context): string {
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket.remoteAddress ?? 'unknown'
}

/** Upload places: so many in all, and fewer for one client address. */
export class UploadPlaces {
  private readonly total: number
  private readonly perClient: number
  private readonly held = new Map<string, number>()
  private inUse = 0

  constructor (options: { total?: number, perClient?: number } = {}) {
    this.total = options.total ?? WEB_MAX_UPLOADS
    this.perClient = options.perClient ?? WEB_MAX_UPLOADS_PER_CLIENT
  }

  /** A place for `client` and the function that gives it back (once), or why there is none. */
  take (client: string): { release: () => void } | { refused: string } {
    const mine = this.held.get(client) ?? 0
    if (mine >= this.perClient) return { refused: `this peer's web page takes ${this.perClient} uploads at once from one address, and yours (${client}) has ${mine} under way; try again when one is in` }
    if (this.inUse >= this.total) return { refused: `this peer's web page is taking ${this.total} uploads already, its limit (at most ${this.perClient} from one address); try again shortly` }
    this.inUse++
    this.held.set(client, mine + 1)
    let given = false
    return {
      release: () => {
        if (given) return
        given = true
        this.inUse--
        const left = (this.held.get(client) ?? 1) - 1
        if (left === 0) this.held.delete(client)
        else this.held.set(client, left)
      },
    }
  }
}

/**
 * An upload holds a place while its body comes in, and only while it keeps
 * the pace: one that falls behind is answered 408 with the rule, its
 * connection closed and its place given back, whatever it still sends.
 */
export function uploadGate (options: { places: UploadPlaces, pace: PaceRule, clock?: Clock }): MiddlewareHandler {
  return async (c, next) => {
    const place = options.places.take(clientAddress(c))
    if ('refused' in place) {
      return refuse(c, 503, 'PeerBusyError', place.refused, { 'retry-after': '5' })
    }
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
    let stopWatch = (): void => {}
    const tooSlow = new Promise<Response>(resolve => {
      if (incoming === undefined) return
      stopWatch = watchPace(options.clock ?? systemClock, options.pace, () => incoming.socket.bytesRead, reason => {
        // A body all in is being checked: its time is the peer's, not the client's.
        if (incoming.complete) return
        place.release()
        resolve(refuse(c, 408, 'RequestTimeout', reason, { connection: 'close' }))
      })
    })
    const handled = next().then(() => undefined)
    try {
      const slow = await Promise.race([tooSlow, handled])
      // The handler goes on reading into a closing socket: its end is nobody's business now.
      if (slow !== undefined) handled.catch(() => {})
      return slow
    } finally {
      stopWatch()
      place.release()
    }
  }
}
