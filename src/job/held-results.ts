import { tileChecksum } from '../protocol/checksum.ts'
import { MAX_KEPT_SUMMARIES } from '../protocol/constants.ts'
import { hasTile, tileBitmap } from '../protocol/tile-set.ts'

/** Workers given a coordinator's own summaries of a phase to keep: enough that one lost with it leaves another. */
const SAFEKEEPERS = 2

/** A coordinator's own worker's summaries of a phase, for a worker to keep (its results die with the coordinator otherwise). */
export interface Safekeeping {
  phase: number
  tiles: Array<{ tile: number, checksum: string, data: Buffer, context?: string }>
}

/** Tiles of a phase reserved for a worker to offer: a bitmap, for the job info's body or a claim's answer. */
export interface ToOffer {
  phase: number
  tiles: Uint8Array
}

/**
 * What the workers of a resumed job hold of it from an earlier coordinator,
 * phase by phase: a phase's held tiles are reserved for their holders as the
 * phase starts (the first at once), and each holder hears of them at its
 * next claim, so it offers them before computing anything.
 */
export class HeldResults {
  /** By peer: the bitmaps of the phases still to come. */
  private readonly later = new Map<string, Map<number, Uint8Array>>()
  /** By peer: reserved and not yet told. */
  private readonly untold = new Map<string, ToOffer>()

  /** A worker joined, holding `held` (bitmaps by phase); the phases after `phase` are kept for later. */
  joined (peer: string, held: Map<number, Uint8Array>, phase: number): void {
    const later = new Map([...held].filter(([p]) => p > phase))
    if (later.size > 0) this.later.set(peer, later)
  }

  /** The peer's session ended: it offers nothing more. */
  left (peer: string): void {
    this.later.delete(peer)
    this.untold.delete(peer)
  }

  /**
   * A phase starts: each holder's tiles of it are reserved (by `reserve`,
   * which says whether the tile was free) and kept to tell it at its next
   * claim.
   */
  phaseStarts (phase: number, tileCount: number, reserve: (tile: number, peer: string) => boolean): number {
    let reserved = 0
    this.untold.clear()
    for (const [peer, later] of this.later) {
      const held = later.get(phase)
      later.delete(phase)
      if (later.size === 0) this.later.delete(peer)
      if (held === undefined) continue
      const mine: number[] = []
      for (let tile = 0; tile < Math.min(tileCount, held.length * 8); tile++) if (hasTile(held, tile) && reserve(tile, peer)) mine.push(tile)
      if (mine.length === 0) continue
      this.untold.set(peer, { phase, tiles: tileBitmap(mine, Math.ceil(tileCount / 8)) })
      reserved += mine.length
    }
    return reserved
  }

  /** What the peer is to offer before it claims, once; undefined if nothing (or not of `phase`). */
  tell (peer: string, phase: number): ToOffer | undefined {
    const offer = this.untold.get(peer)
    if (offer === undefined || offer.phase !== phase) return undefined
    this.untold.delete(peer)
    return offer
  }
}

/**
 * A coordinator's own worker's summaries: they live only in this peer, so as
 * a summary phase ends they are given to the next few other workers that
 * claim, to keep like their own; a next coordinator then collects every
 * summary of the phase rather than computing this peer's share again.
 */
export class OwnSummaries {
  private current = new Map<number, Buffer>()
  private given: { keep: Safekeeping, keptBy: Set<string> } | undefined

  /** A summary this peer's worker made (copied: its buffer is the worker's). */
  add (tile: number, body: Uint8Array): void {
    this.current.set(tile, Buffer.from(body))
  }

  /** The phase's summaries are all in: those made here are to be given away; `context`: a later phase's contexts' digest, by tile. */
  phaseOver (phase: number, context: (tile: number) => string | undefined): void {
    const tiles = [...this.current].slice(0, MAX_KEPT_SUMMARIES).map(([tile, data]) => {
      const digest = context(tile)
      return { tile, data, checksum: tileChecksum(data), ...(digest !== undefined ? { context: digest } : {}) }
    })
    this.current = new Map()
    this.given = tiles.length > 0 ? { keep: { phase, tiles }, keptBy: new Set() } : undefined
  }

  /** The summaries for another `peer` to keep: once each, to the first few. */
  toKeep (peer: string): Safekeeping | undefined {
    const g = this.given
    if (g === undefined || g.keptBy.has(peer) || g.keptBy.size >= SAFEKEEPERS) return undefined
    g.keptBy.add(peer)
    return g.keep
  }

  /** The phases start over: what was made or given is stale. */
  reset (): void {
    this.current = new Map()
    this.given = undefined
  }
}
