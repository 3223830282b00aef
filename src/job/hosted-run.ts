import { randomBytes } from 'node:crypto'
import { ClientGoneError, JobCancelledError, LimitExceededError, ProtocolError, TileswarmError, oneLine } from '../common/errors.ts'
import { shortId } from '../common/log.ts'
import { DEFAULT_PRIORITY, PROTOCOL_VERSION, type Priority } from '../protocol/constants.ts'
import type { SubmitClientMessage, SubmitServerMessage } from '../protocol/messages.ts'
import { errorReply, type Wire } from '../protocol/wire.ts'
import type { BatchCoordinator } from './batch.ts'
import type { JobCoordinator } from './coordinator.ts'
import type { JobHostComponents, JobOutcome } from './hosted.ts'
import { tellPeersMessage, toldKey } from './told.ts'

export type SubmitServerWire = Wire<SubmitServerMessage, SubmitClientMessage>

/** What the shell needs of a job's coordinator, once there is one. */
export interface HostedWork {
  /** Ends the work (this peer leaving, the client gone, the run failed): the run then ends with `reason`. */
  cancel: (reason: Error) => void
  /** Peers that delivered finished work and keep it: a client resuming the job elsewhere names them. */
  holders: () => string[]
  /** This peer leaving: it keeps what its own worker finished, to hand to the job's next coordinator; true if it does (it is a holder too). */
  handOver?: () => boolean
}

type ShellComponents = Pick<JobHostComponents, 'peerId' | 'clock' | 'log' | 'publish' | 'tiles' | 'worker' | 'events' | 'swarmPeers' | 'addrs'>

/**
 * The shell every job coordinated here runs in, tiled or a batch: its id,
 * this peer leaving, the client hanging up, what the client hears of the
 * swarm, and the end, whatever happens: the client told, the swarm told the
 * job is over, its work dropped. What is the job's own runs inside it.
 */
export class HostedRun {
  readonly jobId = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`
  readonly startedAt: number
  /** The submitting client's peer id. */
  readonly client: string
  /** Whose the job is in the workers' shares (the client's, unless said), and its priority. */
  readonly submitter: string
  readonly priority: Priority
  /** Aborted when the job is over: ends the wait on the client. */
  readonly over = new AbortController()
  /** Why this peer is leaving, once it is: the job ends with it. */
  leaving: Error | undefined
  /** Who cancelled the job, once someone has: it ends with that. */
  private cancelled: JobCancelledError | undefined
  /** Taken on: a failure before it is a refusal. */
  accepted = false
  private readonly c: ShellComponents
  /** What the job log calls it. */
  private readonly noun: 'job' | 'batch'
  private work: HostedWork | undefined
  private wire: SubmitServerWire | undefined
  /** The last peers message sent (its toldKey). */
  private told = ''

  constructor (components: ShellComponents, options: { client: string, submitter?: string, priority?: Priority, noun: 'job' | 'batch' }) {
    this.c = components
    this.client = options.client
    this.submitter = options.submitter ?? options.client
    this.priority = options.priority ?? DEFAULT_PRIORITY
    this.noun = options.noun
    this.startedAt = components.clock.now()
  }

  /** This peer is leaving: the job ends, and the client hears where to resume it. */
  leave (reason: Error): void {
    this.leaving = reason
    this.work?.cancel(reason)
  }

  /** Its submitter or the operator cancelled it: the job ends now, its leases released, and its client hears why. */
  cancel (reason: JobCancelledError): void {
    this.cancelled ??= reason
    this.work?.cancel(reason)
  }

  /** Why the job must end before its time (this peer leaving, or a cancel), if it must. */
  get interrupted (): Error | undefined { return this.leaving ?? this.cancelled }

  /** The job's coordinator is made: this peer leaving (or a cancel) ends it, and the swarm hears when the job ends. */
  adopt (work: HostedWork): void {
    this.work = work
    const reason = this.interrupted
    if (reason !== undefined) work.cancel(reason)
  }

  /** Workers may reach the job's coordinator now; the peer's events hear of it. */
  serve (coordinator: JobCoordinator | BatchCoordinator, event: 'job' | 'batch'): void {
    this.c.tiles.register(coordinator)
    this.c.events.dispatchEvent(new CustomEvent(event, { detail: coordinator }))
  }

  /**
   * Runs `body`, the job's own part, to the job's end; whatever happens, the
   * client is told. `drain` waits for what the job still has to send before
   * an error; `cleanup` stops the job's own timers and frees what it holds.
   */
  async run (wire: SubmitServerWire, body: () => Promise<void>, end: { cleanup: () => void, drain?: () => Promise<void> }): Promise<JobOutcome> {
    this.wire = wire
    let outcome: JobOutcome = 'failed'
    try {
      if (this.interrupted !== undefined) throw this.interrupted
      await body()
      outcome = 'done'
    } catch (err) {
      outcome = await this.fail(wire, err as Error, end.drain)
    } finally {
      this.over.abort()
      end.cleanup()
      this.ended(outcome)
    }
    return outcome
  }

  /**
   * Hears the client out for the rest of the job: `expect` reads what it is
   * still to send (a batch's images); anything more, or its hanging up, ends
   * the job.
   */
  listen (expect?: (signal: AbortSignal) => Promise<void>): void {
    const { signal } = this.over
    const wire = this.wire
    if (wire === undefined) throw new Error('internal: listening before the run')
    const receiving = (async () => {
      await expect?.(signal)
      await wire.receive({ signal })
      throw new ProtocolError('the client spoke out of turn')
    })()
    receiving.catch((err: unknown) => {
      if (signal.aborted) return
      // An upload past this peer's limits (the client was told them) is the client's fault; anything else, it went away.
      this.work?.cancel(err instanceof ProtocolError || err instanceof LimitExceededError ? err : new ClientGoneError('the client went away'))
    })
  }

  /** Who else is there, and who holds the job's finished work, when that changed (or `always`). */
  async tellPeers (options: { always?: boolean, withSelf?: boolean } = {}): Promise<void> {
    const { work, wire } = this
    if (work === undefined || wire === undefined) return
    const message = await tellPeersMessage(this.c, work.holders(), options.withSelf === true)
    const told = toldKey(message)
    if (told === this.told && options.always !== true) return
    this.told = told
    await wire.send(message).catch(() => {})
  }

  private async fail (wire: SubmitServerWire, e: Error, drain: (() => Promise<void>) | undefined): Promise<JobOutcome> {
    this.work?.cancel(e)
    // Leaving: the client resumes the job elsewhere, so it hears who is there, and who holds what (this peer too, if it hands over).
    if (e === this.leaving) await this.tellPeers({ always: true, withSelf: !wire.channel.isClosed && this.work?.handOver?.() === true })
    const outcome = e instanceof ClientGoneError || e instanceof JobCancelledError || e === this.leaving ? 'cancelled' : 'failed'
    const which = `${this.noun} ${this.jobId} from ${shortId(this.client)}`
    if (!(e instanceof TileswarmError)) this.c.log(`${which}: failed: ${e.stack ?? e.message}`, 'error')
    else this.c.log(`${which}: ${outcome === 'cancelled' ? 'cancelled' : this.accepted ? 'failed' : 'refused'}: ${oneLine(e.message)}`, outcome === 'failed' && this.accepted ? 'warn' : 'info')
    await drain?.()
    await wire.send(errorReply(e)).catch(() => {})
    await wire.channel.close().catch(() => {})
    return outcome
  }

  /** The swarm hears the job is over, and this peer's worker drops it. */
  private ended (outcome: JobOutcome): void {
    if (this.work === undefined) return
    this.c.tiles.unregister(this.jobId)
    void this.c.publish({ type: 'finished', v: PROTOCOL_VERSION, jobId: this.jobId, coordinator: this.c.peerId, outcome })
    this.c.worker.jobFinished(this.jobId)
  }
}
