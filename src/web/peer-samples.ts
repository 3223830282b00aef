import { repeat, type Clock } from '../common/clock.ts'
import { WEB_SAMPLE_MS, WEB_SAMPLES_KEPT_MS } from '../common/defaults.ts'
import type { SwarmStatus } from '../protocol/messages.ts'

/** One peer's figures at one time: CPU (percent of one core), resident memory, and tiles done per second since the sample before. */
export interface Sample { at: number, cpu?: number, rssBytes?: number, tilesPerS?: number }

/**
 * Each peer's CPU, memory and pace over the last minutes, for the dashboard's
 * graphs: sampled here from what the peers' hellos say (this peer's own from
 * its process), kept in a short ring per peer.
 */
export class PeerSamples {
  private readonly rings = new Map<string, { samples: Sample[], lastDone?: { at: number, done: number } }>()
  private readonly clock: Clock
  private readonly status: () => SwarmStatus
  private readonly own: () => { cpu: number, rssBytes: number }
  private stop: (() => void) | undefined

  constructor (options: { clock: Clock, status: () => SwarmStatus, own: () => { cpu: number, rssBytes: number } }) {
    this.clock = options.clock
    this.status = options.status
    this.own = options.own
  }

  start (): void {
    this.sample()
    this.stop = repeat(this.clock, WEB_SAMPLE_MS, () => { this.sample() })
  }

  close (): void { this.stop?.() }

  sample (): void {
    const now = this.clock.now()
    const s = this.status()
    this.add(s.peerId, now, { ...this.own(), done: s.done })
    for (const p of s.peers) if (p.connected) this.add(p.peerId, now, { ...(p.cpu !== undefined ? { cpu: p.cpu } : {}), ...(p.rssBytes !== undefined ? { rssBytes: p.rssBytes } : {}), ...(p.done !== undefined ? { done: p.done } : {}) })
    for (const [id, ring] of this.rings) {
      while (ring.samples.length > 0 && now - ring.samples[0]!.at > WEB_SAMPLES_KEPT_MS) ring.samples.shift()
      if (ring.samples.length === 0) this.rings.delete(id)
    }
  }

  private add (peerId: string, at: number, figures: { cpu?: number, rssBytes?: number, done?: number }): void {
    let ring = this.rings.get(peerId)
    if (ring === undefined) this.rings.set(peerId, ring = { samples: [] })
    const { done, ...rest } = figures
    const sample: Sample = { at, ...rest }
    if (done !== undefined) {
      // A peer restarted counts from 0 again: no negative pace.
      if (ring.lastDone !== undefined && at > ring.lastDone.at) sample.tilesPerS = Math.max(0, done - ring.lastDone.done) * 1000 / (at - ring.lastDone.at)
      ring.lastDone = { at, done }
    }
    ring.samples.push(sample)
  }

  /** Every peer's samples, oldest first, each with its age in seconds. */
  view (): { sampleMs: number, peers: Record<string, Array<Omit<Sample, 'at'> & { ageS: number }>> } {
    const now = this.clock.now()
    const peers: Record<string, Array<Omit<Sample, 'at'> & { ageS: number }>> = {}
    for (const [id, ring] of this.rings) peers[id] = ring.samples.map(({ at, ...rest }) => ({ ageS: Math.round((now - at) / 1000), ...rest }))
    return { sampleMs: WEB_SAMPLE_MS, peers }
  }
}
