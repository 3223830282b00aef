import { repeat, type Clock } from '../common/clock.ts'
import { shortId, type Log } from '../common/log.ts'
import { MAX_DECISION_PEERS, MAX_SCALE_DECISIONS, MAX_STATUS_PEERS } from '../protocol/constants.ts'
import type { PeerView, ScalingView } from '../protocol/messages.ts'
import type { Startable } from '../common/startable.ts'
import { runHook } from './scale-hook.ts'

/** How a peer adds machines when work waits, and stops them when the swarm is idle (--scale-*). */
export interface ScaleOptions {
  /** Shell commands: the first starts TILESWARM_SCALE_COUNT peers, the second stops the peers TILESWARM_SCALE_PEERS names. */
  out?: string
  in?: string
  /** Scale out when the backlog would take longer than this to drain with the slots at hand. */
  outAfterMs: number
  /** Scale in once the swarm has had no backlog this long. */
  inAfterMs: number
  /** Peers this one has started (through its hook) that may be up at once. */
  max: number
  /** After a decision, none for this long: started peers take a while to join. */
  cooldownMs: number
  /** A hook still running after this long is killed and reported. */
  hookTimeoutMs: number
  /** The private swarm's key file, for the peers a hook starts. */
  swarmKeyPath?: string
  /** This peer's own settings' variables (TILESWARM_DATA_DIR, ...): not passed on to a hook, whose peers need their own. */
  dropEnv?: readonly string[]
}

export interface ScalerComponents {
  peerId: string
  clock: Clock
  log: Log
  slots: number
  /** Every job this peer knows of, coordinated here or announced: units done and in all (of the current phase, for announced ones), and waiting for a peer now. */
  jobs: () => Array<{ jobId: string, done: number, total: number, pending: number }>
  /** The swarm's peers as this one sees them, with what their hellos said. */
  peers: () => PeerView[]
  /** An address of this peer that the started peers can reach: their bootstrap. */
  bootstrap: () => string | undefined
}

/** How often the backlog is sampled and a decision considered. */
export const SCALE_CHECK_MS = 1000
/** The progress rate is measured over this much of the recent past. */
const RATE_WINDOW_MS = 10_000
/** A started peer not in the swarm this long after is said to be missing (once), and no longer counted as on its way. */
const JOIN_WAIT_MS = 120_000
/** The drain time must stay over the bound a third of it, within these, before peers are added. */
const SUSTAIN_MIN_MS = 2000
const SUSTAIN_MAX_MS = 10_000
/** A peer that is stopping waits this long at most for a hook under way, and for its scale-in. */
const STOP_HOOK_MS = 30_000
/** A peer id in a hook's output: the peers it says it started. */
const PEER_ID = /\b(?:12D3KooW|Qm)[1-9A-HJ-NP-Za-km-z]{40,}\b/g

type Decision = ScalingView['decisions'][number] & { at: number }

/**
 * The swarm's backlog as this peer sees it, and what to do about it: the
 * units not done in every job it knows of, those waiting for a peer, the
 * rate they are done at, and so the time to drain them. One peer acts for
 * the swarm: of the peers that have a scale-out hook, the one with the
 * lowest id. When work waits and the drain time stays over the bound for a
 * third of it (2 s at least, 10 s at most), it runs the scale-out hook for
 * the peers needed to bring it under the bound, counting those on their way
 * (within --scale-max); once the swarm has had no backlog for
 * --scale-in-after, the scale-in hook stops every peer its hook started
 * (joined or not). The peers a hook started are the ids it printed. A hook
 * runs alone, bounded in time; every decision is logged and kept.
 */
export class Scaler implements Startable {
  private readonly c: ScalerComponents
  private readonly options: ScaleOptions
  private stopTimer: (() => void) | undefined
  /** Units done so far over every job seen, and per job the last count (a count that goes down is a new phase). */
  private progressed = 0
  private readonly lastDone = new Map<string, number>()
  private samples: Array<{ at: number, progressed: number }> = []
  private remaining = 0
  private pending = 0
  private overSince: number | undefined
  private idleSince: number | undefined
  private quietUntil = -Infinity
  private hook: { done: Promise<void>, kill: () => void } | undefined
  private windingDown: Promise<void> | undefined
  /** Peers this one's hook started (the ids it printed), and when; said missing once if they never join. */
  private readonly started = new Map<string, { at: number, missing: boolean }>()
  /** Peers a hook said it started without naming them: counted against --scale-max, never stopped from here. */
  private unnamed = 0
  private readonly decisions: Decision[] = []
  /** Decisions by direction and outcome, since the peer started (the metrics). */
  readonly totals = new Map<string, number>()

  constructor (components: ScalerComponents, options: ScaleOptions) {
    this.c = components
    this.options = options
  }

  async start (): Promise<void> {
    this.stopTimer = repeat(this.c.clock, SCALE_CHECK_MS, () => { this.tick() })
  }

  /** Stops deciding, and begins to wind down (see `stop`) beside the rest of the peer's stop: leases must not wait for hooks. */
  beforeStop (): void {
    this.stopTimer?.()
    this.windingDown ??= this.windDown()
  }

  /**
   * Stops deciding. A hook under way gets STOP_HOOK_MS to end, and is
   * killed past it; then, with a scale-in hook, every peer this one started
   * is stopped: nobody else would (a machine left running costs money).
   */
  async stop (): Promise<void> {
    this.beforeStop()
    await this.windingDown
  }

  private async windDown (): Promise<void> {
    const bound = Math.min(this.options.hookTimeoutMs, STOP_HOOK_MS)
    await this.settled(bound)
    if (this.hook !== undefined) {
      this.hook.kill()
      await this.settled()
    }
    const ours = this.ours()
    if (this.options.in === undefined || ours.length === 0) return
    this.scaleIn(ours, `this peer is stopping; ${ours.length} peer${ours.length === 1 ? '' : 's'} started here`, bound)
    await this.settled()
  }

  /** Of the peers with a scale-out hook, this one has the lowest id: it decides for the swarm. */
  get acting (): boolean {
    if (this.options.out === undefined) return false
    return this.c.peers().every(p => !p.connected || p.scaler !== true || p.peerId > this.c.peerId)
  }

  /** The peers this one's hook started: the ids it printed, and any in the swarm that say so (started before this peer restarted). */
  ours (): string[] {
    const ids = new Set(this.started.keys())
    for (const p of this.c.peers()) if (p.connected && p.scaledBy === this.c.peerId) ids.add(p.peerId)
    return [...ids]
  }

  /** Work not done and waiting, the rate it is done at, and the time to drain it (undefined until there is a rate). */
  backlog (): { remaining: number, pending: number, ratePerS?: number, drainS?: number, slots: number } {
    const slots = this.c.slots + this.c.peers().reduce((n, p) => n + (p.connected ? p.slots ?? 0 : 0), 0)
    const rate = this.rate()
    return {
      remaining: this.remaining,
      pending: this.pending,
      ...(rate !== undefined ? { ratePerS: rate } : {}),
      ...(rate !== undefined && rate > 0 ? { drainS: this.remaining / rate } : {}),
      slots,
    }
  }

  view (): ScalingView {
    const now = this.c.clock.now()
    const { remaining, ratePerS, drainS, slots } = this.backlog()
    return {
      acting: this.acting,
      out: this.options.out !== undefined,
      in: this.options.in !== undefined,
      boundS: Math.round(this.options.outAfterMs / 1000),
      backlog: remaining,
      ...(ratePerS !== undefined ? { ratePerS: round(ratePerS) } : {}),
      ...(drainS !== undefined ? { drainS: round(drainS) } : {}),
      slots,
      scaledPeers: this.ours().slice(0, MAX_STATUS_PEERS),
      decisions: this.decisions.map(({ at, ...d }) => ({ ...d, ageS: Math.round((now - at) / 1000) })),
    }
  }

  /** Units done since the last sample, over every job; samples older than the window go, and all of them when work starts after none. */
  private sample (): void {
    const now = this.c.clock.now()
    let remaining = 0
    let pending = 0
    const seen = new Set<string>()
    for (const job of this.c.jobs()) {
      seen.add(job.jobId)
      remaining += Math.max(0, job.total - job.done)
      pending += job.pending
      const last = this.lastDone.get(job.jobId) ?? 0
      // A count that went down is the job's next phase, counted from 0 again.
      this.progressed += job.done >= last ? job.done - last : job.done
      this.lastDone.set(job.jobId, job.done)
    }
    for (const id of this.lastDone.keys()) if (!seen.has(id)) this.lastDone.delete(id)
    // Idle time before the work came says nothing of its rate.
    if (this.remaining === 0 && remaining > 0) this.samples = []
    this.remaining = remaining
    this.pending = pending
    this.samples.push({ at: now, progressed: this.progressed })
    while (this.samples.length > 2 && now - this.samples[1]!.at >= RATE_WINDOW_MS) this.samples.shift()
    const connected = new Set(this.c.peers().filter(p => p.connected).map(p => p.peerId))
    for (const [id, s] of this.started) {
      if (s.missing || connected.has(id) || now - s.at < JOIN_WAIT_MS) continue
      s.missing = true
      this.c.log(`scale-out: peer ${id} that the hook started has not joined in ${JOIN_WAIT_MS / 1000} s (can it reach ${this.c.bootstrap() ?? 'this peer'}?); it still counts against --scale-max until the scale-in hook stops it`, 'warn')
    }
  }

  /** Units a second over the window; undefined until the window holds enough of the past to judge by. */
  private rate (): number | undefined {
    const first = this.samples[0]
    const last = this.samples.at(-1)
    if (first === undefined || last === undefined || last.at - first.at < this.sustainMs) return undefined
    return (last.progressed - first.progressed) / ((last.at - first.at) / 1000)
  }

  /** How long the drain time must stay over the bound: a third of it, 2 s at least, 10 s at most. */
  private get sustainMs (): number {
    return Math.min(SUSTAIN_MAX_MS, Math.max(SUSTAIN_MIN_MS, this.options.outAfterMs / 3))
  }

  private tick (): void {
    this.sample()
    const now = this.c.clock.now()
    if (this.hook !== undefined || now < this.quietUntil) {
      this.overSince = undefined
      this.idleSince = undefined
      return
    }
    const backlog = this.backlog()
    // Work waits and nothing moves it (every peer busy elsewhere, or none left): as over the bound as it gets.
    const drainS = backlog.remaining > 0 && backlog.ratePerS === 0 ? Infinity : backlog.drainS
    // Adding peers helps only where units wait for one; it is one peer's decision for the swarm.
    if (this.acting && backlog.pending > 0 && drainS !== undefined && drainS * 1000 > this.options.outAfterMs) {
      this.overSince ??= now
      if (now - this.overSince >= this.sustainMs) this.scaleOut(backlog, drainS)
    } else {
      this.overSince = undefined
    }
    // Stopping them is each peer's own business.
    const ours = this.ours()
    if (this.options.in !== undefined && backlog.remaining === 0 && ours.length > 0) {
      this.idleSince ??= now
      if (now - this.idleSince >= this.options.inAfterMs) this.scaleIn(ours, `no backlog for ${Math.round(this.options.inAfterMs / 1000)} s; ${ours.length} peer${ours.length === 1 ? '' : 's'} started here idle`)
    } else {
      this.idleSince = undefined
    }
  }

  private scaleOut (backlog: ReturnType<Scaler['backlog']>, drainS: number): void {
    const now = this.c.clock.now()
    const ours = this.ours()
    const connected = new Set(this.c.peers().filter(p => p.connected).map(p => p.peerId))
    // On their way: started lately, not in the swarm yet; they will add their slots.
    const coming = [...this.started].filter(([id, s]) => !connected.has(id) && !s.missing).length
    const room = this.options.max - ours.length - this.unnamed
    const boundS = this.options.outAfterMs / 1000
    const reason = `backlog of ${backlog.remaining} units (${backlog.pending} waiting), ${Number.isFinite(drainS) ? `~${Math.round(drainS)} s to drain at ${round(backlog.ratePerS ?? 0)}/s` : 'not moving'} on ${backlog.slots} slot${backlog.slots === 1 ? '' : 's'} (bound ${Math.round(boundS)} s)`
    this.overSince = undefined
    // The slots that would drain it within the bound, less those at hand and on their way, as peers of this one's size.
    const size = Math.max(1, this.c.slots)
    const wanted = Number.isFinite(drainS) ? Math.ceil((backlog.slots * (drainS / boundS - 1) - coming * size) / size) : coming > 0 ? 0 : 1
    if (wanted <= 0) return
    if (room <= 0) {
      this.quietUntil = now + this.options.cooldownMs
      this.c.log(`scale-out: ${reason}, but ${ours.length + this.unnamed} peers started here are up or on their way, the most --scale-max allows (${this.options.max})`, 'warn')
      return
    }
    const count = Math.min(room, wanted)
    const bootstrap = this.c.bootstrap()
    if (bootstrap === undefined) {
      this.c.log('scale-out: this peer has no address to give the peers it would start', 'warn')
      return
    }
    this.run('out', count, [], reason, { TILESWARM_SCALE_COUNT: String(count), TILESWARM_BOOTSTRAP: bootstrap, TILESWARM_SCALED_BY: this.c.peerId, ...(this.options.swarmKeyPath !== undefined ? { TILESWARM_SWARM_KEY: this.options.swarmKeyPath } : {}) })
  }

  private scaleIn (peers: string[], reason: string, timeoutMs?: number): void {
    this.run('in', peers.length, peers, reason, { TILESWARM_SCALE_COUNT: String(peers.length), TILESWARM_SCALE_PEERS: peers.join(' '), TILESWARM_SCALED_BY: this.c.peerId }, timeoutMs)
  }

  /** Runs a hook alone and bounded; what came of it is logged and kept, and the next decision waits out the cool-down. */
  private run (direction: 'out' | 'in', count: number, peers: string[], reason: string, vars: Record<string, string>, timeoutMs = this.options.hookTimeoutMs): void {
    const command = direction === 'out' ? this.options.out! : this.options.in!
    const decision: Decision = { at: this.c.clock.now(), ageS: 0, direction, count, ...(peers.length > 0 ? { peers: peers.slice(0, MAX_DECISION_PEERS) } : {}), reason, outcome: 'running' }
    this.decisions.unshift(decision)
    this.decisions.length = Math.min(this.decisions.length, MAX_SCALE_DECISIONS)
    this.overSince = undefined
    this.idleSince = undefined
    this.c.log(`scale-${direction}: ${reason}: ${direction === 'out' ? `asking for ${count} more peer${count === 1 ? '' : 's'}` : `stopping ${peers.map(shortId).join(', ')}`} (${command})`)
    const env: Record<string, string> = {}
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && this.options.dropEnv?.includes(k) !== true) env[k] = v
    Object.assign(env, vars)
    const hook = runHook(command, env, timeoutMs, this.c.clock)
    const done = hook.done.then(({ outcome, message, output, ms }) => {
      decision.outcome = outcome
      if (message !== '') decision.message = message
      this.totals.set(`${direction} ${outcome}`, (this.totals.get(`${direction} ${outcome}`) ?? 0) + 1)
      if (direction === 'out') {
        // What it started, failed or not: the ids it printed, counted until a scale-in stops them.
        const named = new Set([...output.matchAll(PEER_ID)].map(m => m[0]).filter(id => id !== this.c.peerId))
        const at = this.c.clock.now()
        for (const id of named) this.started.set(id, { at, missing: false })
        if (outcome === 'done' && named.size < count) {
          this.unnamed += count - named.size
          this.c.log(`scale-out: the hook said nothing of ${count - named.size} of the ${count} peers it was asked for: they count against --scale-max, and scale-in cannot name them (print their peer ids)`, 'warn')
        }
      } else if (outcome === 'done') {
        for (const id of peers) this.started.delete(id)
      }
      if (outcome === 'done') this.c.log(`scale-${direction}: hook done in ${(ms / 1000).toFixed(1)} s${message !== '' ? `: ${message}` : ''}`)
      else this.c.log(`scale-${direction}: hook ${outcome} after ${(ms / 1000).toFixed(1)} s${message !== '' ? `: ${message}` : ''}`, 'warn')
    }).finally(() => {
      this.hook = undefined
      this.quietUntil = this.c.clock.now() + this.options.cooldownMs
    })
    this.hook = { done, kill: hook.kill }
  }

  /** Resolves when the hook under way (if any) has ended, or after `ms`. */
  async settled (ms = Infinity): Promise<void> {
    if (this.hook === undefined) return
    let timer: unknown
    await Promise.race([this.hook.done, new Promise<void>(resolve => { if (Number.isFinite(ms)) timer = this.c.clock.setTimeout(resolve, ms) })])
    this.c.clock.clearTimeout(timer)
  }
}

function round (n: number): number {
  return Math.round(n * 10) / 10
}
