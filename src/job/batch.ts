import type { ClaimOptions } from './scheduler.ts'
import { createHash } from 'node:crypto'
import { systemClock, type Clock } from '../common/clock.ts'
import { DEFAULT_PARK_MS, OFFER_HOLD_MS } from '../common/defaults.ts'
import { JobFailedError } from '../common/errors.ts'
import { toSpecs, type OutputFormat, type Step } from '../imaging/index.ts'
import type { BatchInfo } from '../protocol/messages.ts'
import { tileChecksum } from '../protocol/checksum.ts'
import { FailurePolicy } from './failure-policy.ts'
import { LeaseTable, type Lease, type LeaseStats, type SpeculationPolicy } from './leases.ts'
import { Listeners } from './listeners.ts'
import { UnitCoordinator, type ResultOutcome } from './unit-coordinator.ts'

/** One image of a batch, uploaded and not yet done: a worker gets its file and returns the encoded output. */
export interface BatchTask {
  /** The client's number of the image. */
  index: number
  file: Buffer
  /** Names the output: a worker that kept it from an earlier coordinator sends it without computing. */
  key: string
  format: OutputFormat
}

/** The output's identity: the same input, pipeline, format and quality give the same bytes, whoever computes them. */
export function taskKeyOf (inputSha256: string, steps: readonly Step[], format: OutputFormat, quality: number, strip: boolean): string {
  return createHash('sha256').update(`task\n${inputSha256}\n${JSON.stringify(toSpecs([...steps]))}\n${format}\n${quality}${strip ? '\nstrip' : ''}`).digest('hex')
}

export interface BatchOptions {
  jobId: string
  /** This peer: its own worker failing an image fails it (the computation is the same everywhere). */
  self: string
  steps: Step[]
  quality: number
  /** Drop the inputs' metadata. */
  strip?: boolean
  /** Images in the batch. */
  images: number
  leaseMs: number
  parkMs?: number
  clock?: Clock
  speculation?: SpeculationPolicy
  /**
   * A resumed batch: these peers may hold outputs an earlier coordinator's
   * workers computed. Nothing is granted until each has said what it holds
   * or the window has passed, so none is computed twice; what a peer holds
   * is reserved for it. This peer's own worker counts among them.
   */
  collect?: { holders: string[], windowMs: number }
}

export type TaskClaim = { kind: 'task', lease: Lease, task: BatchTask } | { kind: 'done' } | { kind: 'wait' } | { kind: 'cancelled' }

/** An image's encoded output as a worker returns it; `kept`: it had it from an earlier coordinator. */
export interface ImageOutputInfo {
  width: number
  height: number
  kept?: boolean
}

export interface BatchEvents {
  /** An image's output is in (first valid result wins; once per image, ever). */
  image: (task: BatchTask, output: { data: Buffer, width: number, height: number }, peer: string, recovered: boolean) => void
  /** An image failed where it was tried: the batch goes on without it. */
  failed: (task: BatchTask, error: JobFailedError) => void
  /** Images went back to the pool and no claim was waiting: tell the swarm. */
  returned: (pending: number) => void
}

/** Peers that may hand an image on (past their limits, out of memory) before nobody is thought able to do it. */
const MAX_HAND_ONS = 3

/**
 * The coordinator of a batch: its images are tasks in one lease table,
 * added as the client uploads them, and scheduled as tiles are (leases,
 * expiry, speculation, a peer gone). A worker gets the compressed file and
 * returns the compressed output: this peer neither decodes nor encodes.
 */
export class BatchCoordinator {
  readonly jobId: string
  readonly steps: Step[]
  readonly quality: number
  readonly strip: boolean
  readonly images: number
  readonly imagesByPeer = new Map<string, number>()
  private readonly self: string
  private readonly units: UnitCoordinator
  /** By slot in the lease table; dropped once done. */
  private readonly tasks: Array<BatchTask | undefined> = []
  /** Who failed each slot's image, and how often. */
  private readonly failures = new Map<number, FailurePolicy>()
  /** Which peers handed each slot's image on, how often in all, and why last. */
  private readonly handOns = new Map<number, { peers: Set<string>, times: number, message: string }>()
  /** Peers with a session on this batch now. */
  private readonly sessions = new Map<string, number>()
  /** Who holds each output (by task key), as they said; and the images reserved for each, to grant them first. */
  private readonly heldBy = new Map<string, Set<string>>()
  private readonly reserved = new Map<string, number[]>()
  private readonly events = new Listeners<BatchEvents>()
  /** Bytes of the files held, for the upload window. */
  heldBytes = 0
  /** Images added and not yet done or failed. */
  heldImages = 0

  constructor (options: BatchOptions) {
    this.jobId = options.jobId
    this.self = options.self
    this.steps = options.steps
    this.quality = options.quality
    this.strip = options.strip === true
    this.images = options.images
    this.units = new UnitCoordinator(new LeaseTable(options.images, options.leaseMs, { idPrefix: 't', opened: 0 }), {
      // A peer that could not take an image on does not get it again.
      refused: (peer, slot) => this.handOns.get(slot)?.peers.has(peer) === true,
      returned: pending => { this.events.emit('returned', pending) },
    }, { clock: options.clock ?? systemClock, parkMs: options.parkMs ?? DEFAULT_PARK_MS, ...(options.speculation !== undefined ? { speculation: options.speculation } : {}), ...(options.collect !== undefined ? { collect: options.collect } : {}) })
  }

  /** A worker holds these outputs (task keys): the images they belong to are reserved for it, now or as they are uploaded. */
  held (peer: string, keys: string[]): void {
    for (const key of keys) {
      const holders = this.heldBy.get(key) ?? new Set<string>()
      holders.add(peer)
      this.heldBy.set(key, holders)
    }
    for (const [slot, task] of this.tasks.entries()) if (task !== undefined && this.heldBy.get(task.key)?.has(peer) === true) this.reserve(slot, peer)
    this.units.heardFrom(peer)
    this.units.wake()
  }

  /** An image kept by `peer` waits for it (for a while: a holder that never claims gives it back by expiry). */
  private reserve (slot: number, peer: string): void {
    if (this.leases.reserve(slot, peer, this.units.clock.now(), OFFER_HOLD_MS) === undefined) return
    const mine = this.reserved.get(peer) ?? []
    if (!mine.includes(slot)) mine.push(slot)
    this.reserved.set(peer, mine)
    this.units.scheduleExpiry()
  }

  on<E extends keyof BatchEvents>(event: E, listener: BatchEvents[E]): void {
    this.events.on(event, listener)
  }

  get isRunning (): boolean { return this.units.isRunning }

  /** Peers working on the batch now (a session open). */
  get workers (): number { return this.sessions.size }

  /** A worker's session begins; `left` when it ends. */
  joined (peer: string): void {
    this.sessions.set(peer, (this.sessions.get(peer) ?? 0) + 1)
  }

  left (peer: string): void {
    const n = (this.sessions.get(peer) ?? 1) - 1
    if (n > 0) return void this.sessions.set(peer, n)
    this.sessions.delete(peer)
    // Its reservations go back to the pool at once.
    this.reserved.delete(peer)
    for (const leaseId of this.units.reservationsOf(peer)) this.units.release(peer, leaseId)
    // Images every peer still here has refused: nobody is left to take them on.
    if (this.isRunning) for (const [slot, h] of [...this.handOns]) if (this.everyoneRefused(h.peers)) this.fail(slot, `no peer here could take it on: ${h.message}`)
  }

  private everyoneRefused (refusing: Set<string>): boolean {
    return [...this.sessions.keys()].every(p => refusing.has(p))
  }

  get leases (): LeaseTable { return this.units.leases }
  get stats (): LeaseStats { return this.leases.stats }

  /** What a worker needs to know once per session. */
  info (): Omit<BatchInfo, 'type' | 'rid'> {
    return { jobId: this.jobId, ops: toSpecs(this.steps), quality: this.quality, ...(this.strip ? { strip: true as const } : {}), leaseMs: this.leases.leaseMs, parkMs: this.units.parkMs, images: this.images }
  }

  /** An uploaded image becomes a task: claims waiting get it first. */
  add (task: BatchTask): void {
    const slot = this.leases.open()
    this.tasks[slot] = task
    this.heldBytes += task.file.length
    this.heldImages++
    // The collect window runs from the first image: only then does the swarm hear of the batch.
    this.units.startCollectWindow()
    const holder = [...this.heldBy.get(task.key) ?? []].find(p => this.sessions.has(p))
    if (holder !== undefined) this.reserve(slot, holder)
    this.units.wake()
  }

  async claim (peer: string, options: ClaimOptions = {}): Promise<TaskClaim> {
    // What this peer kept comes first: it sends it without computing.
    const mine = this.reserved.get(peer)
    while (mine !== undefined && mine.length > 0 && this.isRunning) {
      const slot = mine.shift()!
      const lease = this.leases.leaseOf(slot, peer, 'offer')
      const task = this.tasks[slot]
      // Its deadline runs from now, as any grant's.
      if (lease !== undefined && task !== undefined && this.units.renew(peer, lease.leaseId)) return { kind: 'task', lease, task }
    }
    const outcome = await this.units.claim(peer, options)
    if (outcome.kind !== 'lease') return outcome
    const task = this.tasks[outcome.lease.tile]
    // The batch was cancelled (its files dropped) between the grant and this continuation: nothing to send.
    if (task === undefined) {
      this.units.release(peer, outcome.lease.leaseId)
      return { kind: this.isRunning ? 'wait' : 'cancelled' }
    }
    return { kind: 'task', lease: outcome.lease, task }
  }

  /** A worker's encoded output for an image. */
  result (peer: string, slot: number, leaseId: string, checksum: string, body: Buffer, output: ImageOutputInfo): ResultOutcome {
    if (!this.isRunning) return { status: 'duplicate', reason: `batch is ${this.units.state}` }
    const leased = this.units.checkLease(slot, leaseId, peer, `image ${slot}`)
    if (leased !== undefined) return leased
    if (body.length === 0 || tileChecksum(body) !== checksum) return { status: 'rejected', reason: `image ${slot}'s output is empty or fails its checksum` }
    const kept = output.kept === true
    this.leases.complete(slot, leaseId, peer, this.units.clock.now(), !kept)
    const task = this.resolve(slot)!
    this.imagesByPeer.set(peer, (this.imagesByPeer.get(peer) ?? 0) + 1)
    this.events.emit('image', task, { data: body, width: output.width, height: output.height }, peer, kept)
    return { status: 'accepted' }
  }

  /** The slot is over: its file goes. */
  private resolve (slot: number): BatchTask | undefined {
    const task = this.tasks[slot]
    if (task === undefined) return undefined
    this.tasks[slot] = undefined
    this.failures.delete(slot)
    this.handOns.delete(slot)
    this.heldBytes -= task.file.length
    this.heldImages--
    return task
  }

  /**
   * A worker could not process an image (`handOn`: it could not take it on,
   * past its limits or memory). Unless the image fails now (see failsNow),
   * it goes back to the pool for another peer.
   */
  failed (peer: string, slot: number, message: string, options: { handOn?: boolean } = {}): void {
    const task = this.tasks[slot]
    // Only a peer that holds the image may say so: no other can fail it.
    const lease = this.leases.leaseOf(slot, peer, 'work') ?? this.leases.leaseOf(slot, peer, 'copy') ?? this.leases.leaseOf(slot, peer, 'offer')
    if (!this.isRunning || task === undefined || lease === undefined) return
    const why = this.failsNow(peer, slot, message, options.handOn === true)
    if (why === undefined) {
      this.units.release(peer, lease.leaseId)
      return
    }
    this.fail(slot, why)
  }

  /**
   * Why the image fails now, or undefined. Handed on: another peer may
   * manage, and this one is not given it again; it fails once three peers,
   * or every peer here, could not. Failed: the failure policy decides.
   */
  private failsNow (peer: string, slot: number, message: string, handOn: boolean): string | undefined {
    if (!handOn) {
      const policy = this.failures.get(slot) ?? new FailurePolicy({ self: this.self, twiceFails: true })
      this.failures.set(slot, policy)
      return policy.failed(peer) ? message : undefined
    }
    const h = this.handOns.get(slot) ?? { peers: new Set<string>(), times: 0, message }
    this.handOns.set(slot, h)
    h.peers.add(peer)
    h.times++
    h.message = message
    const fails = h.peers.size >= MAX_HAND_ONS || this.everyoneRefused(h.peers) || h.times >= MAX_HAND_ONS * MAX_HAND_ONS
    return fails ? `${h.peers.size === 1 ? 'no peer' : `none of ${h.peers.size} peers`} could take it on: ${message}` : undefined
  }

  /** The image is over, without an output. */
  private fail (slot: number, message: string): void {
    const task = this.tasks[slot]
    if (task === undefined) return
    this.leases.abandon(slot)
    this.resolve(slot)
    this.events.emit('failed', task, new JobFailedError(message))
  }

  renew (peer: string, leaseId: string): boolean {
    return this.units.renew(peer, leaseId)
  }

  release (peer: string, leaseId: string): boolean {
    return this.units.release(peer, leaseId)
  }

  peerGone (peer: string): number {
    return this.units.peerGone(peer)
  }

  /** Every image is in or failed: claims hear that it is done. */
  finish (): void {
    this.units.end('done')
  }

  cancel (): void {
    if (!this.isRunning) return
    this.tasks.length = 0
    this.units.end('cancelled')
  }
}
