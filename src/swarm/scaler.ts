import { spawn } from 'node:child_process'
import { repeat, type Clock } from '../clock.ts'
import { oneLine } from '../errors.ts'
import { shortId, type Log } from '../log.ts'
import type { PeerView, ScalingView } from '../protocol/messages.ts'

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
  /** Every job this peer knows of, coordinated here or announced: its units done and in all (of the current phase, for announced ones). */
  jobs: () => Array<{ jobId: string, done: number, total: number }>
  /** The swarm's peers as this one sees them, with what their hellos said. */
  peers: () => PeerView[]
  /** An address of this peer that the started peers can reach: their bootstrap. */
  bootstrap: () => string | undefined
}

/** How often the backlog is sampled and a decision considered. */
export const SCALE_CHECK_MS = 1000
/** The progress rate is measured over this much of the recent past. */
const RATE_WINDOW_MS = 10_000
/** Peers asked for and not joined this long after are no longer expected. */
const JOIN_WAIT_MS = 120_000
const MAX_DECISIONS = 20
/** A peer that is stopping waits this long at most for a hook under way, and for its scale-in. */
const STOP_HOOK_MS = 30_000
/** What a hook said, kept for the log and the dashboard. */
const HOOK_OUTPUT_CHARS = 400

type Decision = ScalingView['decisions'][number] & { at: number }

/**
 * The swarm's backlog as this peer sees it, and what to do about it: the
 * units waiting in every job it knows of, the rate they are being done at,
 * and so the time to drain them. One peer acts for the swarm: of the peers
 * that have a scale-out hook, the one with the lowest id. When the drain
 * time stays over the bound for a third of it (2 s at least, 10 s at most),
 * it runs the scale-out hook for the peers needed to bring it under the
 * bound (within --scale-max); once the swarm has had no backlog for
 * --scale-in-after, the scale-in hook stops the peers its hook started.
 * A hook runs alone, bounded in time; every decision is logged and kept.
 */
export class Scaler {
  private readonly c: ScalerComponents
  private readonly options: ScaleOptions
  private stopTimer: (() => void) | undefined
  /** Units done so far over every job seen, and per job the last count (a count that goes down is a new phase). */
  private progressed = 0
  private readonly lastDone = new Map<string, number>()
  private readonly samples: Array<{ at: number, progressed: number }> = []
  private remaining = 0
  private overSince: number | undefined
  private idleSince: number | undefined
  private quietUntil = -Infinity
  private hook: Promise<void> | undefined
  private readonly starts: Array<{ at: number, count: number }> = []
  /** Peers this one's hook started, and when each was first seen. */
  private readonly seenScaled = new Map<string, number>()
  private readonly decisions: Decision[] = []
  /** Decisions by direction and outcome, since the peer started (the metrics). */
  readonly totals = new Map<string, number>()

  constructor (components: ScalerComponents, options: ScaleOptions) {
    this.c = components
    this.options = options
  }

  start (): void {
    this.stopTimer = repeat(this.c.clock, SCALE_CHECK_MS, () => { this.tick() })
  }

  /**
   * Stops deciding. A hook under way is waited for; then, with a scale-in
   * hook, the peers this one started are stopped: nobody else would (a
   * machine left running costs money). Bounded by STOP_HOOK_MS each.
   */
  async stop (): Promise<void> {
    this.stopTimer?.()
    const bound = Math.min(this.options.hookTimeoutMs, STOP_HOOK_MS)
    await this.settled(bound)
    const scaled = this.scaledPeers()
    if (this.options.in === undefined || scaled.length === 0) return
    this.run('in', scaled.length, scaled, `this peer is stopping; ${scaled.length} peer${scaled.length === 1 ? '' : 's'} started here still up`, { TILESWARM_SCALE_COUNT: String(scaled.length), TILESWARM_SCALE_PEERS: scaled.join(' '), TILESWARM_SCALED_BY: this.c.peerId }, bound)
    await this.settled(bound)
  }

  /** Of the peers with a scale-out hook, this one has the lowest id: it decides for the swarm. */
  get acting (): boolean {
    if (this.options.out === undefined) return false
    return this.c.peers().every(p => !p.connected || p.scaler !== true || p.peerId > this.c.peerId)
  }

  /** The peers this one's hook started that are in the swarm now. */
  scaledPeers (): string[] {
    return this.c.peers().filter(p => p.connected && p.scaledBy === this.c.peerId).map(p => p.peerId)
  }

  /** Work waiting, the rate it is done at, and the time to drain it (undefined until there is a rate). */
  backlog (): { remaining: number, ratePerS?: number, drainS?: number, slots: number } {
    const slots = this.c.slots + this.c.peers().reduce((n, p) => n + (p.connected ? p.slots ?? 0 : 0), 0)
    const rate = this.rate()
    return {
      remaining: this.remaining,
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
      scaledPeers: this.scaledPeers().slice(0, 1024),
      decisions: this.decisions.map(({ at, ...d }) => ({ ...d, ageS: Math.round((now - at) / 1000) })),
    }
  }

  /** Units done since the last sample, over every job; samples older than the window go. */
  private sample (): void {
    const now = this.c.clock.now()
    let remaining = 0
    const seen = new Set<string>()
    for (const job of this.c.jobs()) {
      seen.add(job.jobId)
      remaining += Math.max(0, job.total - job.done)
      const last = this.lastDone.get(job.jobId) ?? 0
      // A count that went down is the job's next phase, counted from 0 again.
      this.progressed += job.done >= last ? job.done - last : job.done
      this.lastDone.set(job.jobId, job.done)
    }
    for (const id of this.lastDone.keys()) if (!seen.has(id)) this.lastDone.delete(id)
    this.remaining = remaining
    this.samples.push({ at: now, progressed: this.progressed })
    while (this.samples.length > 2 && now - this.samples[1]!.at >= RATE_WINDOW_MS) this.samples.shift()
    for (const id of this.scaledPeers()) if (!this.seenScaled.has(id)) this.seenScaled.set(id, now)
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
    return Math.min(10_000, Math.max(2000, this.options.outAfterMs / 3))
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
    // Adding peers is one peer's decision for the swarm; stopping them is each one's for its own.
    if (this.acting && drainS !== undefined && drainS * 1000 > this.options.outAfterMs) {
      this.overSince ??= now
      if (now - this.overSince >= this.sustainMs) this.scaleOut(backlog, drainS)
    } else {
      this.overSince = undefined
    }
    const scaled = this.scaledPeers()
    if (this.options.in !== undefined && backlog.remaining === 0 && scaled.length > 0) {
      this.idleSince ??= now
      if (now - this.idleSince >= this.options.inAfterMs) this.scaleIn(scaled)
    } else {
      this.idleSince = undefined
    }
  }

  /** Peers asked for recently that have not joined yet. */
  private expected (now: number): number {
    while (this.starts.length > 0 && now - this.starts[0]!.at > JOIN_WAIT_MS) this.starts.shift()
    if (this.starts.length === 0) return 0
    const since = this.starts[0]!.at
    const joined = [...this.seenScaled.values()].filter(at => at >= since).length
    return Math.max(0, this.starts.reduce((n, s) => n + s.count, 0) - joined)
  }

  private scaleOut (backlog: ReturnType<Scaler['backlog']>, drainS: number): void {
    const now = this.c.clock.now()
    const up = this.scaledPeers().length
    const room = this.options.max - up - this.expected(now)
    const boundS = this.options.outAfterMs / 1000
    const reason = `backlog of ${backlog.remaining} units, ${Number.isFinite(drainS) ? `~${Math.round(drainS)} s to drain at ${round(backlog.ratePerS ?? 0)}/s` : 'not moving'} on ${backlog.slots} slot${backlog.slots === 1 ? '' : 's'} (bound ${Math.round(boundS)} s)`
    if (room <= 0) {
      this.overSince = undefined
      this.quietUntil = now + this.options.cooldownMs
      this.c.log(`scale-out: ${reason}, but ${up + this.expected(now)} peers started here are up or on their way, the most --scale-max allows (${this.options.max})`, 'warn')
      return
    }
    // The slots that would drain it within the bound, as peers of this one's size.
    const wanted = Number.isFinite(drainS) ? Math.ceil(backlog.slots * (drainS / boundS - 1) / Math.max(1, this.c.slots)) : 1
    const count = Math.max(1, Math.min(room, wanted))
    const bootstrap = this.c.bootstrap()
    if (bootstrap === undefined) {
      this.c.log('scale-out: this peer has no address to give the peers it would start', 'warn')
      return
    }
    this.starts.push({ at: now, count })
    this.run('out', count, [], reason, { TILESWARM_SCALE_COUNT: String(count), TILESWARM_BOOTSTRAP: bootstrap, TILESWARM_SCALED_BY: this.c.peerId, ...(this.options.swarmKeyPath !== undefined ? { TILESWARM_SWARM_KEY: this.options.swarmKeyPath } : {}) })
  }

  private scaleIn (peers: string[]): void {
    const reason = `no backlog for ${Math.round(this.options.inAfterMs / 1000)} s; ${peers.length} peer${peers.length === 1 ? '' : 's'} started here idle`
    this.run('in', peers.length, peers, reason, { TILESWARM_SCALE_COUNT: String(peers.length), TILESWARM_SCALE_PEERS: peers.join(' '), TILESWARM_SCALED_BY: this.c.peerId })
  }

  /** Runs a hook alone and bounded; what came of it is logged and kept, and the next decision waits out the cool-down. */
  private run (direction: 'out' | 'in', count: number, peers: string[], reason: string, vars: Record<string, string>, timeoutMs = this.options.hookTimeoutMs): void {
    const command = direction === 'out' ? this.options.out! : this.options.in!
    const decision: Decision = { at: this.c.clock.now(), ageS: 0, direction, count, ...(peers.length > 0 ? { peers: peers.slice(0, 64) } : {}), reason, outcome: 'running' }
    this.decisions.unshift(decision)
    this.decisions.length = Math.min(this.decisions.length, MAX_DECISIONS)
    this.overSince = undefined
    this.idleSince = undefined
    this.c.log(`scale-${direction}: ${reason}: ${direction === 'out' ? `asking for ${count} more peer${count === 1 ? '' : 's'}` : `stopping ${peers.map(shortId).join(', ')}`} (${command})`)
    const env: Record<string, string> = {}
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && this.options.dropEnv?.includes(k) !== true) env[k] = v
    Object.assign(env, vars)
    this.hook = runHook(command, env, timeoutMs, this.c.clock).then(({ outcome, message, ms }) => {
      decision.outcome = outcome
      if (message !== '') decision.message = message
      this.totals.set(`${direction} ${outcome}`, (this.totals.get(`${direction} ${outcome}`) ?? 0) + 1)
      if (outcome === 'done') this.c.log(`scale-${direction}: hook done in ${(ms / 1000).toFixed(1)} s${message !== '' ? `: ${message}` : ''}`)
      else {
        this.c.log(`scale-${direction}: hook ${outcome} after ${(ms / 1000).toFixed(1)} s${message !== '' ? `: ${message}` : ''}`, 'warn')
        // Peers a failed hook may not have started are not waited for.
        if (direction === 'out') this.starts.pop()
      }
    }).finally(() => {
      this.hook = undefined
      this.quietUntil = this.c.clock.now() + this.options.cooldownMs
    })
  }

  /** Resolves when the hook under way (if any) has ended, or after `ms`. */
  async settled (ms = Infinity): Promise<void> {
    if (this.hook === undefined) return
    let timer: unknown
    await Promise.race([this.hook, new Promise<void>(resolve => { if (Number.isFinite(ms)) timer = this.c.clock.setTimeout(resolve, ms) })])
    this.c.clock.clearTimeout(timer)
  }
}

function round (n: number): number {
  return Math.round(n * 10) / 10
}

/**
 * `sh -c command` with these variables, killed (its whole process group)
 * past `timeoutMs`. What it printed last comes back as one line. Peers it
 * starts must leave its process group (setsid), or a timeout takes them too.
 */
async function runHook (command: string, env: Record<string, string>, timeoutMs: number, clock: Clock): Promise<{ outcome: 'done' | 'failed' | 'timed out', message: string, ms: number }> {
  const started = clock.now()
  return await new Promise(resolve => {
    let output = ''
    const keep = (chunk: Buffer): void => { output = (output + chunk.toString()).slice(-4 * HOOK_OUTPUT_CHARS) }
    const child = spawn('/bin/sh', ['-c', command], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    let timedOut = false
    const timer = clock.setTimeout(() => {
      timedOut = true
      try { process.kill(-child.pid!, 'SIGKILL') } catch { child.kill('SIGKILL') }
    }, timeoutMs)
    const said = (): string => output.trim() === '' ? '' : oneLine(output.trim().split('\n').slice(-3).join('; ')).slice(-HOOK_OUTPUT_CHARS)
    child.on('error', err => {
      clock.clearTimeout(timer)
      resolve({ outcome: 'failed', message: oneLine(err.message), ms: clock.now() - started })
    })
    let ended = false
    const end = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (ended) return
      ended = true
      clock.clearTimeout(timer)
      child.stdout.destroy()
      child.stderr.destroy()
      const ms = clock.now() - started
      if (timedOut) resolve({ outcome: 'timed out', message: `killed after ${Math.round(timeoutMs / 1000)} s (--scale-hook-timeout)${said() !== '' ? `; it said: ${said()}` : ''}`, ms })
      else if (code === 0) resolve({ outcome: 'done', message: said(), ms })
      else resolve({ outcome: 'failed', message: `${code !== null ? `exit status ${code}` : `killed by ${signal}`}${said() !== '' ? `: ${said()}` : ''}`, ms })
    }
    // Its last words come with 'close'; a peer it left running in the background may hold its pipes open, so the exit is enough after a second.
    child.on('close', end)
    child.on('exit', (code, signal) => { clock.setTimeout(() => { end(code, signal) }, 1000) })
  })
}
