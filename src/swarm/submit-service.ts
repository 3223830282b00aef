import type { Connection, Stream } from '@libp2p/interface'
import { whenAborted, type Clock } from '../common/clock.ts'
import { DEFAULT_PACE, watchPace, type PaceRule } from '../common/upload-pace.ts'
import type { Duplex } from '../protocol/framing.ts'
import { MAX_INBOUND_SUBMIT_STREAMS, MAX_TILE_SIZE, MIN_TILE_SIZE, SLOW_CLOSE_MS, STOP_WAIT_MS, UPLOAD_IDLE_MS } from '../common/defaults.ts'
import { CancelRefusedError, JobCancelledError, LimitExceededError, NetworkError, PeerBusyError, PeerLeavingError, ProtocolError, SubmitRefusedError, TileswarmError, UnknownJobError, oneLine } from '../common/errors.ts'
import { resolvePipeline, type OutputFormat } from '../imaging/index.ts'
import { JobHost } from '../job/host.ts'
import type { Hosted, HostedJob, JobHostComponents, JobLimits, JobOutcome, Submission } from '../job/hosted.ts'
import { BatchHost } from '../job/batch-host.ts'
import { DEFAULT_VERIFY_FLOOR } from '../protocol/verify-level.ts'
import type { SwarmNode } from '../net/node.ts'
import { DEFAULT_PRIORITY, SUBMIT_PROTOCOL, type Priority } from '../protocol/constants.ts'
import { JobHistory } from './job-history.ts'
import { errorReply, submitServerWire } from '../protocol/wire.ts'
import type { OpenChannel } from './channels.ts'
import { shortId } from '../common/log.ts'
import type { Startable } from '../common/startable.ts'

export interface SubmitServiceComponents extends JobHostComponents {
  node: SwarmNode
  clock: Clock
  openChannel: OpenChannel
}

export interface SubmitServiceOptions extends JobLimits {
  /** Tile edge for jobs whose client names none; chosen per job if unset. */
  tileSize?: number
  maxJobs: number
  maxUploadBytes: number
  /** Peer ids allowed to submit jobs here; everyone in the swarm when unset. */
  allowSubmit?: Set<string>
  /** Who may submit high-priority jobs here: everyone who may submit, these peer ids, or (unset) those on allowSubmit, if it is set (nobody if not). */
  allowPriority?: Set<string> | 'all'
  uploadIdleMs?: number
  /** How fast a submission's upload must come (--min-upload-kbps, --upload-timeout): a trickle loses its admission. */
  uploadPace?: PaceRule
}

/**
 * The submit protocol: who may submit, how many jobs at once, and what is
 * read before a job is taken on. A submission holds its place from the
 * moment it is admitted, through upload and decoding, to its end, so a full
 * peer refuses before it reads a byte of the image.
 */
export class SubmitService implements Startable {
  private readonly c: SubmitServiceComponents
  private readonly options: SubmitServiceOptions
  /** Submissions admitted and not yet over, uploading or running. */
  private admitted = 0
  private readonly hosts = new Map<Hosted, Promise<JobOutcome>>()
  /** What jobs that ended here did, summed: with the running ones', the peer's counters. */
  private readonly ended: JobTotals = { units: 0, granted: 0, expired: 0, released: 0, bytesIn: 0, bytesOut: 0, checked: 0, disagreements: 0, extra: 0, excluded: 0 }
  private stopping = false
  /** Jobs that ended here in the last hour. */
  readonly history: JobHistory
  /** This peer's web page's client nodes: their jobs are the page's (`web:` and this peer's id). */
  private readonly pageClients = new Set<string>()

  constructor (components: SubmitServiceComponents, options: SubmitServiceOptions) {
    this.c = components
    this.options = options
    this.history = new JobHistory({ clock: components.clock })
  }

  /**
   * Ends a job coordinated here, for its submitter (the peer that submitted
   * it) or the operator; anyone else is refused. Its leases are released at
   * once, its workers hear it is over, its client that it was cancelled.
   */
  cancel (jobId: string, by: { peer: string, operator: boolean }): void {
    const host = [...this.hosts.keys()].find(h => h.jobId === jobId)
    if (host === undefined) throw new UnknownJobError(`no job ${jobId} runs on this peer (it ended, or another peer coordinates it: tileswarm jobs lists them)`)
    const submitter = host.status().client
    if (!by.operator && by.peer !== submitter) {
      this.c.log(`job ${jobId}: a cancel from ${shortId(by.peer)} refused (neither its submitter nor the operator)`)
      throw new CancelRefusedError(`job ${jobId} may be cancelled only by its submitter (${shortId(submitter)}) or this peer's operator (--http-token); you are ${shortId(by.peer)}`)
    }
    this.c.log(`job ${jobId}: cancelled by ${by.operator ? 'the operator' : `its submitter ${shortId(by.peer)}`}`)
    host.cancel(new JobCancelledError(`job ${jobId} was cancelled by ${by.operator ? 'the operator' : 'its submitter'}`))
  }

  /** Jobs this peer is taking on or coordinating now. */
  get activeJobs (): number { return this.admitted }

  /** The jobs coordinated here now. */
  jobs (): HostedJob[] {
    return [...this.hosts.keys()].map(h => h.status())
  }

  /** Units, leases and bytes of every job coordinated here since the peer started: monotonic. */
  totals (): JobTotals {
    const t = { ...this.ended }
    for (const job of this.jobs()) add(t, job)
    return t
  }

  /** Jobs from this client node are the web page's. */
  pageClient (peerId: string): void {
    this.pageClients.add(peerId)
  }

  async start (): Promise<void> {
    await this.c.node.handle(SUBMIT_PROTOCOL, ({ stream, connection }) => { void this.handle(stream, connection) }, { maxInboundStreams: MAX_INBOUND_SUBMIT_STREAMS })
  }

  /** Refuses new submissions; the jobs here end and their clients are told why (bounded by `signal`). */
  async stop (signal = AbortSignal.timeout(STOP_WAIT_MS)): Promise<void> {
    this.stopping = true
    await this.c.node.unhandle(SUBMIT_PROTOCOL).catch(() => {})
    const leaving = new PeerLeavingError('the coordinating peer is shutting down')
    for (const host of this.hosts.keys()) host.leave(leaving)
    await Promise.race([Promise.allSettled(this.hosts.values()), whenAborted(signal)])
    // Jobs ended: what this peer's own worker finished goes to their next coordinators first (each bounded).
    await this.c.worker.handOver?.settled()
  }

  /** A job under way: this peer leaving ends it. When it ends, 'ended' (detail: its status and outcome) goes to the peer's events. */
  private async hold (host: Hosted, run: Promise<JobOutcome>): Promise<void> {
    this.hosts.set(host, run)
    let outcome: JobOutcome = 'failed'
    try {
      outcome = await run
    } finally {
      this.hosts.delete(host)
      const job = host.status()
      add(this.ended, job)
      this.history.add(job, outcome, this.c.clock.now() - job.startedAt)
      this.c.events.dispatchEvent(new CustomEvent<JobEnded>('ended', { detail: { job, outcome, ms: this.c.clock.now() - job.startedAt } }))
    }
  }

  private async handle (stream: Stream, connection: Connection): Promise<void> {
    const meter = { bytes: 0 }
    const wire = submitServerWire(this.c.openChannel(counted(stream, meter), { maxBodyBytes: this.options.maxUploadBytes }, 'submit-server'))
    const client = connection.remotePeer.toString()
    let admitted = false
    const release = (): void => { if (admitted) this.admitted--; admitted = false }
    /** Dropped as too slow: said and done already. */
    let dropped = false
    let stopWatch = (): void => {}
    try {
      if (this.stopping) throw new PeerLeavingError('this peer is shutting down; submit to another')
      if (this.options.allowSubmit !== undefined && !this.options.allowSubmit.has(client)) {
        throw new SubmitRefusedError(`peer ${client} may not submit jobs to this peer (--allow-submit); ask its operator to add your peer id (tileswarm id --data-dir <dir>)`)
      }
      if (this.admitted >= this.options.maxJobs) throw new PeerBusyError(`this peer has ${this.admitted} job${this.admitted === 1 ? '' : 's'} under way, its limit (--max-jobs); try again later or submit to another peer`)
      this.admitted++
      admitted = true
      stopWatch = watchPace(this.c.clock, this.options.uploadPace ?? DEFAULT_PACE, () => meter.bytes, reason => {
        // Its place goes at once, whatever the stream still does.
        dropped = true
        release()
        const slow = new NetworkError(reason)
        this.c.log(`submission from ${shortId(client)} dropped: ${reason}`)
        // Said, then closed; cut off if the client does not take it soon.
        const cut = this.c.clock.setTimeout(() => { wire.channel.abort(slow) }, SLOW_CLOSE_MS)
        void wire.send(errorReply(slow)).then(async () => { await wire.channel.close() }).catch(() => {}).finally(() => {
          this.c.clock.clearTimeout(cut)
          wire.channel.abort(slow)
        })
      })
      const idle = { timeoutMs: this.options.uploadIdleMs ?? UPLOAD_IDLE_MS }
      const { message: request } = await wire.receive(idle)
      if (request.type === 'batch') {
        // A batch's images come as its workers free up: their pace is the swarm's, not the client's.
        stopWatch()
        if (this.stopping) throw new PeerLeavingError('this peer is shutting down; submit to another')
        const from = this.submission(client, request.priority)
        const host = new BatchHost(this.c, this.options, { steps: resolvePipeline(request.ops), quality: request.quality, images: request.images, ...(request.strip === true ? { strip: true } : {}), ...(request.resume !== undefined ? { holders: request.resume.holders } : {}) }, from)
        await this.hold(host, host.run(wire))
        return
      }
      if (request.type !== 'submit') throw new ProtocolError(`expected a submission, got ${request.type}`)
      const from = this.submission(client, request.priority)
      const steps = resolvePipeline(request.ops)
      const tileSize = request.tileSize ?? this.options.tileSize
      if (tileSize !== undefined && (tileSize < MIN_TILE_SIZE || tileSize > MAX_TILE_SIZE)) throw new LimitExceededError(`tile size must be an integer between ${MIN_TILE_SIZE} and ${MAX_TILE_SIZE}, got ${tileSize}`)
      if (request.bytes > this.options.maxUploadBytes) throw new LimitExceededError(`an image of ${request.bytes} bytes is over this peer's upload limit of ${this.options.maxUploadBytes} bytes (--max-upload-bytes)`)
      await wire.send({ type: 'ready' })
      const { message: upload, body } = await wire.receive(idle)
      if (upload.type !== 'upload') throw new ProtocolError(`expected the upload, got ${upload.type}`)
      if ((body?.length ?? 0) !== request.bytes) throw new ProtocolError(`the upload is ${body?.length ?? 0} bytes, the submission said ${request.bytes}`)
      stopWatch()
      if (dropped) return
      if (this.stopping) throw new PeerLeavingError('this peer is shutting down; submit to another')
      const host = new JobHost(this.c, this.options, { steps, ...(tileSize !== undefined ? { tileSize } : {}), format: request.format as OutputFormat, quality: request.quality, verify: request.verify ?? DEFAULT_VERIFY_FLOOR, ...(request.resume !== undefined ? { holders: request.resume.holders } : {}), ...(request.name !== undefined ? { name: request.name } : {}), ...(request.strip === true ? { strip: true } : {}) }, from)
      await this.hold(host, host.run(wire, body ?? Buffer.alloc(0)))
    } catch (err) {
      if (dropped) return
      // Refused before a job was taken on; a job's own end is its host's to report.
      const e = err as Error
      if (!(err instanceof TileswarmError)) this.c.log(`submission from ${shortId(client)} failed: ${e.stack ?? e.message}`, 'error')
      else this.c.log(`submission from ${shortId(client)} refused: ${oneLine(e.message)}`)
      await wire.send(errorReply(err)).catch(() => {})
      await wire.channel.close().catch(() => {})
    } finally {
      stopWatch()
      release()
    }
  }

  /** Whose the job is and its priority; a high one from a client not allowed it is refused, not quietly made normal. */
  private submission (client: string, priority: Priority = DEFAULT_PRIORITY): Submission {
    if (priority === 'high' && !this.mayUseHigh(client)) {
      throw new SubmitRefusedError(`peer ${client} may not submit high-priority jobs to this peer (not on its --allow-priority${this.options.allowPriority === undefined ? ', nor, without it, on --allow-submit' : ''}); submit with --priority normal, or ask its operator to add your peer id to --allow-priority`)
    }
    return { client, submitter: this.pageClients.has(client) ? `web:${this.c.peerId}` : client, priority }
  }

  private mayUseHigh (client: string): boolean {
    const { allowPriority, allowSubmit } = this.options
    if (allowPriority === 'all') return true
    return (allowPriority ?? allowSubmit)?.has(client) ?? false
  }
}

/** The stream as it is, its incoming bytes counted as they arrive (a frame's worth may be on its way). */
function counted (stream: Duplex, meter: { bytes: number }): Duplex {
  return {
    source: (async function * () {
      for await (const chunk of stream.source) {
        meter.bytes += chunk.byteLength
        yield chunk
      }
    })(),
    sink: async source => { await stream.sink(source) },
    ...(stream.abort !== undefined ? { abort: (err: Error) => { stream.abort!(err) } } : {}),
    ...(stream.close !== undefined ? { close: async () => { await stream.close!() } } : {}),
  }
}

/** The 'ended' event's detail: a job coordinated here ended, how, and how long after it was admitted. */
export interface JobEnded { job: HostedJob, outcome: JobOutcome, ms: number }

/** Units, leases, bytes and checks of jobs coordinated here. */
export interface JobTotals { units: number, granted: number, expired: number, released: number, bytesIn: number, bytesOut: number, checked: number, disagreements: number, extra: number, excluded: number }

function add (t: JobTotals, job: HostedJob): void {
  t.units += job.done
  t.granted += job.leases.granted
  t.expired += job.leases.expired
  t.released += job.leases.released
  t.bytesIn += job.bytesIn
  t.bytesOut += job.bytesOut
  t.checked += job.verify.checked
  t.disagreements += job.verify.disagreements
  t.extra += job.verify.extra
  t.excluded += job.verify.excluded
}
