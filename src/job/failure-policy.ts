/** Other peers that must fail a unit of work before it fails: one alone may be in its own trouble (its memory). */
export const FAILING_PEERS = 2

/**
 * Who could not compute a unit of work (a job, or one image of a batch).
 * The computation is the same on every peer, so this peer's own worker
 * failing fails it; another's may be its own trouble, so FAILING_PEERS
 * others must (or, where `twiceFails`, one of them twice).
 */
export class FailurePolicy {
  private readonly self: string | undefined
  private readonly twiceFails: boolean
  /** Each peer that failed, how often. */
  private readonly byPeer = new Map<string, number>()

  constructor (options: { self: string | undefined, twiceFails?: boolean }) {
    this.self = options.self
    this.twiceFails = options.twiceFails === true
  }

  /** `peer` failed: whether the unit fails now. */
  failed (peer: string): boolean {
    const times = (this.byPeer.get(peer) ?? 0) + 1
    this.byPeer.set(peer, times)
    const others = [...this.byPeer.keys()].filter(p => p !== this.self)
    return (this.self !== undefined && this.byPeer.has(this.self)) || others.length >= FAILING_PEERS || (this.twiceFails && times >= 2)
  }

  /** A peer that computes again was in passing trouble. */
  forgive (peer: string): void {
    this.byPeer.delete(peer)
  }

  /** Peers that failed and were not forgiven. */
  get peers (): number { return this.byPeer.size }
}
