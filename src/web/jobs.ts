import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from 'libp2p'
import { DEFAULT_QUALITY, DEFAULT_WEB_RESULTS_BYTES, WEB_JOB_MAX_EVENTS, WEB_JOB_SWEEP_MS, WEB_MAX_RUNNING_JOBS } from '../common/defaults.ts'
import { InvalidImageError, InvalidParameterError, PeerBusyError, TileswarmError, oneLine } from '../common/errors.ts'
import { formatFromPath, parseOps, readImageHeader, resolvePipeline, type OutputFormat, type Step } from '../imaging/index.ts'
import { submitToSwarm, type SubmitEvent } from '../client/submit.ts'
import type { VerifyLevel } from '../protocol/verify-level.ts'
import type { Priority } from '../protocol/constants.ts'
import { submitBatch } from '../client/batch.ts'
import type { BatchEvent, BatchSummary } from '../client/batch-events.ts'
import { planBatch } from '../client/batch-plan.ts'
import { checkQuality } from '../client/options.ts'
import type { Log } from '../common/log.ts'
import { CONTENT_TYPE, EXTENSION, nameOnly, safeStem, shownByName, uploadNames } from './names.ts'
import { toDrop } from './keeping.ts'

export interface Upload {
  name: string
  data: Buffer
}

export interface WebJobRequest {
  ops: string
  format?: OutputFormat
  quality?: number
  /** How much of a tiled job is computed twice (the coordinator's default if unset). */
  verify?: VerifyLevel
  /** How the swarm weighs it (normal if unset); this peer refuses high unless its operator allows the page (--allow-priority all, or --allow-submit). */
  priority?: Priority
  /** Drop the inputs' EXIF, ICC profiles and XMP (kept by default). */
  strip?: boolean
  files: Upload[]
  /** The address it came from: each keeps its share of the results. */
  client?: string
}

/** A request checked: its pipeline, quality, checks and priority, and each file's container format, in order. */
interface Checked { steps: Step[], quality: number, verify?: VerifyLevel, priority?: Priority, strip?: boolean, containers: string[] }

type WebEvent = SubmitEvent | BatchEvent | { event: 'failed', name: string, message: string } | { event: 'ended', state: 'done' | 'failed' }
/** An event and its number in the job's stream: a page that reconnects says the last it had. */
export interface Sequenced { seq: number, event: WebEvent }

export interface WebJob {
  id: string
  kind: 'image' | 'batch'
  /** The address that sent it. */
  client: string
  /** What the page shows: the file's name, or how many images. */
  title: string
  ops: string
  state: 'running' | 'done' | 'failed'
  createdAt: number
  endedAt?: number
  events: Sequenced[]
  /** Events numbered so far (past WEB_JOB_MAX_EVENTS they are sent live but not kept). */
  seq: number
  listeners: Set<(event: Sequenced) => void>
  /** Where the result is kept until the job is dropped. */
  result?: { type: string, filename: string, bytes: number, path: string }
  error?: { name: string, message: string }
  dir?: string
}

/** What the page and `GET /api/jobs/:id` see of a job. */
export function describeJob (job: WebJob): Record<string, unknown> {
  return {
    id: job.id,
    kind: job.kind,
    title: job.title,
    ops: job.ops,
    state: job.state,
    createdAt: job.createdAt,
    ...(job.endedAt !== undefined ? { endedAt: job.endedAt } : {}),
    ...(job.result !== undefined ? { result: { type: job.result.type, filename: job.result.filename, bytes: job.result.bytes } } : {}),
    ...(job.error !== undefined ? { error: job.error } : {}),
  }
}

/**
 * The jobs submitted through the web page: each goes to the swarm as the
 * library sends it (one image tiled, several as a batch), through one client
 * node of this peer's; its events are kept for the progress view, its result
 * until it is fetched or an hour has passed.
 */
export class WebJobs {
  private readonly jobs = new Map<string, WebJob>()
  private readonly entry: () => string[]
  private readonly client: () => Promise<Libp2p>
  private readonly log: Log
  private readonly maxPixels: number
  private readonly tileAboveMp: number | undefined
  private readonly resultsBytes: number
  /** Wall-clock time, injected. */
  private readonly now: () => number
  private closed = false
  /** Uploads being checked, not yet jobs. */
  private starting = 0
  /** Results an hour old go even when no new job comes to make room. */
  private readonly sweeper = setInterval(() => { this.evict() }, WEB_JOB_SWEEP_MS).unref()

  constructor (options: { entry: () => string[], client: () => Promise<Libp2p>, log: Log, maxPixels: number, tileAboveMp?: number, resultsBytes?: number, now?: () => number }) {
    this.resultsBytes = options.resultsBytes ?? DEFAULT_WEB_RESULTS_BYTES
    this.now = options.now ?? Date.now
    this.entry = options.entry
    this.client = options.client
    this.log = options.log
    this.maxPixels = options.maxPixels
    this.tileAboveMp = options.tileAboveMp
  }

  get (id: string): WebJob | undefined { return this.jobs.get(id) }

  list (): WebJob[] { return [...this.jobs.values()].reverse() }

  /** Checks what came (a pipeline that parses, files that are images) and starts the job; refusals throw, with the reason. */
  async start (request: WebJobRequest): Promise<WebJob> {
    if (request.files.length === 0) throw new InvalidParameterError('no image was uploaded: choose one or more files')
    // Counted from here, before the header reads: uploads checked at once cannot all slip under the limit.
    const running = [...this.jobs.values()].filter(j => j.state === 'running').length + this.starting
    if (running >= WEB_MAX_RUNNING_JOBS) throw new PeerBusyError(`this peer's web page has ${running} jobs running, its limit; try again when one is done`)
    this.starting++
    try {
      return this.begin(request, await this.check(request))
    } finally {
      this.starting--
    }
  }

  /** The pipeline and the images, checked; each file's container format, in order. */
  private async check (request: WebJobRequest): Promise<Checked> {
    const steps = resolvePipeline(parseOps(request.ops))
    const quality = checkQuality(request.quality ?? DEFAULT_QUALITY, 'quality')
    const containers: string[] = []
    for (const f of request.files) {
      const header = await readImageHeader(f.data).catch((err: unknown) => {
        throw new InvalidImageError(`${safeStem(f.name)}: ${err instanceof Error ? oneLine(err.message) : String(err)}`)
      })
      if (header.width * header.height > this.maxPixels) throw new InvalidImageError(`${safeStem(f.name)}: ${header.width}x${header.height} is over this peer's limit of ${(this.maxPixels / 1e6).toFixed(1)} MP (--max-pixels)`)
      containers.push(header.container)
    }
    return { steps, quality, containers, ...(request.verify !== undefined ? { verify: request.verify } : {}), ...(request.priority !== undefined ? { priority: request.priority } : {}), ...(request.strip === true ? { strip: true } : {}) }
  }

  private begin (request: WebJobRequest, checked: Checked): WebJob {
    const { steps, containers } = checked
    const job: WebJob = {
      id: randomBytes(8).toString('hex'),
      kind: request.files.length === 1 ? 'image' : 'batch',
      client: request.client ?? 'unknown',
      title: request.files.length === 1 ? safeStem(request.files[0]!.name) : `${request.files.length} images`,
      ops: request.ops,
      state: 'running',
      createdAt: this.now(),
      events: [],
      seq: 0,
      listeners: new Set(),
    }
    this.jobs.set(job.id, job)
    const run = job.kind === 'image'
      ? this.runImage(job, request.files[0]!, containers[0]!, request.format, checked)
      : this.runBatch(job, steps, request.files, containers, request.format, checked)
    void run.then(() => { this.end(job, 'done') }, (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err))
      job.error = { name: e instanceof TileswarmError ? e.name : 'InternalError', message: oneLine(e.message) }
      if (!(e instanceof TileswarmError)) this.log(`web job ${job.id} failed: ${e.stack ?? e.message}`, 'error')
      this.emit(job, { event: 'failed', ...job.error })
      this.end(job, 'failed')
    })
    return job
  }

  private emit (job: WebJob, event: WebEvent): void {
    const e = { seq: job.seq++, event }
    if (job.events.length < WEB_JOB_MAX_EVENTS) job.events.push(e)
    for (const l of job.listeners) l(e)
  }

  private end (job: WebJob, state: 'done' | 'failed'): void {
    job.state = state
    job.endedAt = this.now()
    // The progress streams hear it, then see the job is over.
    this.emit(job, { event: 'ended', state })
    job.listeners.clear()
    this.log(`web job ${job.id} (${job.title}, ${job.ops}): ${state}${job.error !== undefined ? `: ${job.error.message}` : ''}`)
    // A new result may take the budget past its end: the oldest go.
    this.evict()
  }

  private async runImage (job: WebJob, file: Upload, container: string, format: OutputFormat | undefined, { steps, quality, verify, priority, strip }: Checked): Promise<void> {
    const out = format ?? formatFromPath(`x${EXTENSION[container] ?? '.png'}`) ?? 'png'
    const done = await submitToSwarm({ steps, input: file.data, name: safeStem(file.name), format: out, quality, ...(strip === true ? { strip } : {}) }, { peer: this.entry(), node: await this.client(), maxUploadBytes: file.data.length, ...(verify !== undefined ? { verify } : {}), ...(priority !== undefined ? { priority } : {}), onEvent: e => { this.emit(job, e) } })
    // Kept on disk, not in memory, for the hour it may be fetched.
    job.dir = await this.folder()
    const path = join(job.dir, 'result')
    await writeFile(path, done.data)
    job.result = { type: CONTENT_TYPE[out], filename: `${safeStem(file.name)}-processed${EXTENSION[out] ?? '.avif'}`, bytes: done.data.length, path }
  }

  /** Several images: written to a folder of the job's own under their safe names, sent as one batch, the outputs zipped. */
  private async runBatch (job: WebJob, steps: Step[], files: Upload[], containers: string[], format: OutputFormat | undefined, { quality, verify, priority, strip }: Checked): Promise<void> {
    const dir = await this.folder()
    job.dir = dir
    const inputs = uploadNames(files, containers).map(name => join(dir, 'in', name))
    await mkdir(join(dir, 'in'))
    for (const [i, path] of inputs.entries()) {
      await writeFile(path, files[i]!.data, { flag: 'wx' })
      // On disk now: the upload's memory goes for the rest of the batch.
      files[i]!.data = Buffer.alloc(0)
    }
    const zip = join(dir, 'outputs.zip')
    const run = async (): Promise<BatchSummary> => {
      const plan = await planBatch(inputs, zip, { recursive: false, ...(format !== undefined ? { format } : {}) })
      return await submitBatch({ plan, steps, quality, ...(strip === true ? { strip } : {}), skipExisting: false }, { peer: this.entry(), node: await this.client(), ...(verify !== undefined ? { verify } : {}), ...(priority !== undefined ? { priority } : {}), ...(this.tileAboveMp !== undefined ? { tileAboveMp: this.tileAboveMp } : {}), onBatchEvent: e => { this.emit(job, shownByName(e)) } })
    }
    const summary = await run().finally(async () => { await rm(join(dir, 'in'), { recursive: true, force: true }) })
    if (summary.done === 0) throw new InvalidImageError(`no image could be processed: ${summary.failures.map(f => `${nameOnly(f.input)}: ${f.message}`).join('; ')}`)
    job.result = { type: 'application/zip', filename: `tileswarm-${job.id}.zip`, bytes: (await stat(zip)).size, path: zip }
  }

  /** A job's own folder, under the system's temporary folder; none once the server is closing. */
  private async folder (): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'tileswarm-web-'))
    if (this.closed) {
      await rm(dir, { recursive: true, force: true })
      throw new PeerBusyError('this peer\'s web server is shutting down')
    }
    return dir
  }

  /** Ended jobs go by the keeping rule (keeping.ts): their hour up, the disk budget spent, or their client past its share. */
  evict (): void {
    const ended = [...this.jobs.values()].filter(j => j.endedAt !== undefined)
    const drop = toDrop(ended.map(j => ({ id: j.id, client: j.client, endedAt: j.endedAt!, bytes: j.result?.bytes ?? 0 })), this.now(), { resultsBytes: this.resultsBytes })
    for (const job of ended) if (drop.has(job.id)) this.drop(job)
  }

  private drop (job: WebJob): void {
    this.jobs.delete(job.id)
    if (job.dir !== undefined) void rm(job.dir, { recursive: true, force: true }).catch((err: Error) => { this.log(`could not remove ${job.dir}: ${oneLine(err.message)}`, 'warn') })
  }

  /** The server is closing: every job's folder goes. */
  async close (): Promise<void> {
    this.closed = true
    clearInterval(this.sweeper)
    await Promise.all([...this.jobs.values()].map(async j => { if (j.dir !== undefined) await rm(j.dir, { recursive: true, force: true }) }))
    this.jobs.clear()
  }
}
