import { randomBytes, timingSafeEqual } from 'node:crypto'
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from 'libp2p'
import { DEFAULT_QUALITY, DEFAULT_WEB_RESULTS_BYTES, WEB_JOB_MAX_EVENTS, WEB_JOB_SWEEP_MS, WEB_MAX_RUNNING_JOBS } from '../common/defaults.ts'
import { CancelRefusedError, InvalidImageError, InvalidParameterError, PeerBusyError, TileswarmError, UnknownJobError, oneLine } from '../common/errors.ts'
import { formatFromPath, parseOps, readImageHeader, resolvePipeline, type OutputFormat, type Step } from '../imaging/index.ts'
import { submitToSwarm, type SubmitEvent } from '../client/submit.ts'
import type { VerifyLevel } from '../protocol/verify-level.ts'
import type { Priority } from '../protocol/constants.ts'
import { submitBatch } from '../client/batch.ts'
import type { BatchEvent, BatchSummary } from '../client/batch-events.ts'
import { planBatch } from '../client/batch-plan.ts'
import { checkQuality } from '../client/options.ts'
import type { Log } from '../common/log.ts'
import { CONTENT_TYPE, EXTENSION, downloadName, nameOnly, safeStem, shownByName, uploadNames } from './names.ts'
import { toDrop } from './keeping.ts'
import { reportText, zipWithReport, type FileState } from './batch-report.ts'
import { batchPreviews, Thumbnails } from './thumbs.ts'

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
interface Checked { steps: Step[], quality: number, verify?: VerifyLevel, priority?: Priority, strip?: boolean, containers: Array<string | undefined>, files: FileState[] }

type WebEvent = SubmitEvent | BatchEvent | { event: 'failed', name: string, message: string } | { event: 'ended', state: WebJob['state'] } | { event: 'cancelling' }
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
  state: 'running' | 'done' | 'failed' | 'cancelled'
  /** A batch's files, each with its state and why it failed. */
  files?: FileState[]
  /** The job's id in the swarm, once its coordinator took it. */
  swarmJobId?: string
  /** Given only to the browser that submitted it: it may cancel the job. */
  cancelKey: string
  cancelling?: boolean
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
    ...(job.files !== undefined ? { files: job.files } : {}),
    ...(job.swarmJobId !== undefined ? { swarmJobId: job.swarmJobId } : {}),
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
  private readonly cancelSwarm: (swarmJobId: string) => Promise<void>
  readonly thumbs = new Thumbnails()
  private closed = false
  /** Uploads being checked, not yet jobs. */
  private starting = 0
  /** Results an hour old go even when no new job comes to make room. */
  private readonly sweeper = setInterval(() => { this.evict() }, WEB_JOB_SWEEP_MS).unref()

  constructor (options: { entry: () => string[], client: () => Promise<Libp2p>, log: Log, maxPixels: number, tileAboveMp?: number, resultsBytes?: number, now?: () => number, cancel: (swarmJobId: string) => Promise<void> }) {
    this.resultsBytes = options.resultsBytes ?? DEFAULT_WEB_RESULTS_BYTES
    this.now = options.now ?? Date.now
    this.cancelSwarm = options.cancel
    this.entry = options.entry
    this.client = options.client
    this.log = options.log
    this.maxPixels = options.maxPixels
    this.tileAboveMp = options.tileAboveMp
  }

  get (id: string): WebJob | undefined { return this.jobs.get(id) }

  list (): WebJob[] { return [...this.jobs.values()].reverse() }

  /** Ends a running job for the browser that submitted it (the key it was given) or the operator; at once in the swarm, or as soon as the swarm has it. */
  cancel (id: string, by: { key?: string | undefined, operator: boolean }): WebJob {
    const job = this.jobs.get(id)
    if (job === undefined) throw new UnknownJobError('no such job (a job is kept for an hour after it ends)')
    if (!by.operator && !sameKey(by.key, job.cancelKey)) throw new CancelRefusedError('only the browser that submitted this job, or this peer\'s operator (--http-token), may cancel it')
    if (job.state !== 'running' || job.cancelling === true) return job
    job.cancelling = true
    this.emit(job, { event: 'cancelling' })
    if (job.swarmJobId !== undefined) this.cancelInSwarm(job)
    return job
  }

  private cancelInSwarm (job: WebJob): void {
    void this.cancelSwarm(job.swarmJobId!).catch((err: Error) => {
      // Ended meanwhile, or its coordinator gone: the page hears why it goes on.
      if (job.state === 'running') this.emit(job, { event: 'note', message: `could not cancel: ${oneLine(err.message)}` })
    })
  }

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
    const containers: Array<string | undefined> = []
    const files: FileState[] = []
    for (const f of request.files) {
      const refused = (reason: string): void => {
        // One image alone is refused; in a batch, a bad file fails alone, as with the CLI.
        if (request.files.length === 1) throw new InvalidImageError(`${safeStem(f.name)}: ${reason}`)
        files.push({ name: safeStem(f.name), state: 'failed', reason })
        containers.push(undefined)
      }
      const header = await readImageHeader(f.data).catch((err: unknown) => { refused(err instanceof Error ? oneLine(err.message) : String(err)) })
      if (header === undefined) continue
      if (header.width * header.height > this.maxPixels) {
        refused(`${header.width}x${header.height} is over this peer's limit of ${(this.maxPixels / 1e6).toFixed(1)} MP (--max-pixels)`)
        continue
      }
      files.push({ name: safeStem(f.name), state: 'waiting' })
      containers.push(header.container)
    }
    if (files.every(f => f.state === 'failed')) throw new InvalidImageError(`no image could be read: ${files.map(f => `${f.name}: ${f.reason ?? ''}`).join('; ')}`)
    return { steps, quality, containers, files, ...(request.verify !== undefined ? { verify: request.verify } : {}), ...(request.priority !== undefined ? { priority: request.priority } : {}), ...(request.strip === true ? { strip: true } : {}) }
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
      cancelKey: randomBytes(16).toString('hex'),
      ...(request.files.length > 1 ? { files: checked.files } : {}),
    }
    this.jobs.set(job.id, job)
    const run = job.kind === 'image'
      ? this.runImage(job, request.files[0]!, containers[0]!, request.format, checked)
      : this.runBatch(job, steps, request.files, containers, request.format, checked)
    void run.then(() => { this.end(job, 'done') }, (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err))
      // Whatever the swarm says of a job being cancelled, the page asked for it.
      if (job.cancelling === true) {
        job.error = { name: e.name, message: 'cancelled' }
        this.end(job, 'cancelled')
        return
      }
      job.error = { name: e instanceof TileswarmError ? e.name : 'InternalError', message: oneLine(e.message) }
      if (!(e instanceof TileswarmError)) this.log(`web job ${job.id} failed: ${e.stack ?? e.message}`, 'error')
      this.emit(job, { event: 'failed', ...job.error })
      this.end(job, 'failed')
    })
    return job
  }

  private emit (job: WebJob, event: WebEvent): void {
    if ((event.event === 'accepted' || event.event === 'started') && job.swarmJobId === undefined) {
      job.swarmJobId = event.jobId
      if (job.cancelling === true) this.cancelInSwarm(job)
    }
    const e = { seq: job.seq++, event }
    if (job.events.length < WEB_JOB_MAX_EVENTS) job.events.push(e)
    for (const l of job.listeners) l(e)
  }

  private end (job: WebJob, state: WebJob['state']): void {
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
    job.dir = await this.folder()
    // The preview's "before" and the tile map's background, made while the swarm works.
    void this.thumbs.of(file.data, join(job.dir, 'input.webp')).catch(() => {})
    const done = await submitToSwarm({ steps, input: file.data, name: safeStem(file.name), format: out, quality, ...(strip === true ? { strip } : {}) }, { peer: this.entry(), node: await this.client(), maxUploadBytes: file.data.length, ...(verify !== undefined ? { verify } : {}), ...(priority !== undefined ? { priority } : {}), onEvent: e => { this.emit(job, e) } })
    // Kept on disk, not in memory, for the hour it may be fetched.
    const path = join(job.dir, 'result')
    await writeFile(path, done.data)
    job.result = { type: CONTENT_TYPE[out], filename: downloadName(job.ops, { stem: safeStem(file.name), extension: EXTENSION[out] ?? '.avif' }), bytes: done.data.length, path }
  }

  /** Several images: the good ones written to a folder of the job's own under their safe names, sent as one batch; each file's outcome noted; the outputs zipped with a report. */
  private async runBatch (job: WebJob, steps: Step[], files: Upload[], containers: Array<string | undefined>, format: OutputFormat | undefined, { quality, verify, priority, strip }: Checked): Promise<void> {
    const dir = await this.folder()
    job.dir = dir
    const states = job.files!
    const good = files.flatMap((f, i) => containers[i] !== undefined ? [{ file: f, state: states[i]! }] : [])
    const names = uploadNames(good.map(g => g.file), containers.filter((c): c is string => c !== undefined))
    const byName = new Map(names.map((name, i) => [name, good[i]!.state]))
    await mkdir(join(dir, 'in'))
    for (const [i, name] of names.entries()) {
      await writeFile(join(dir, 'in', name), good[i]!.file.data, { flag: 'wx' })
    }
    // On disk now: the uploads' memory goes for the rest of the batch.
    for (const f of files) f.data = Buffer.alloc(0)
    const onEvent = (e: BatchEvent): void => {
      const shown = shownByName(e)
      if (shown.event === 'image') Object.assign(byName.get(shown.input) ?? {}, { state: 'done', output: shown.output })
      if (shown.event === 'image-failed') Object.assign(byName.get(shown.input) ?? {}, { state: 'failed', reason: oneLine(shown.message) })
      this.emit(job, shown)
    }
    const run = async (): Promise<BatchSummary> => {
      const plan = await planBatch(names.map(n => join(dir, 'in', n)), join(dir, 'out'), { recursive: false, ...(format !== undefined ? { format } : {}) })
      return await submitBatch({ plan, steps, quality, ...(strip === true ? { strip } : {}), skipExisting: false }, { peer: this.entry(), node: await this.client(), ...(verify !== undefined ? { verify } : {}), ...(priority !== undefined ? { priority } : {}), ...(this.tileAboveMp !== undefined ? { tileAboveMp: this.tileAboveMp } : {}), onBatchEvent: onEvent })
    }
    let summary: BatchSummary
    try {
      summary = await run()
      await batchPreviews(this.thumbs, dir, states, new Map([...byName].map(([name, f]) => [f, name])))
    } finally {
      await rm(join(dir, 'in'), { recursive: true, force: true })
    }
    for (const f of states) if (f.state === 'waiting') Object.assign(f, { state: 'failed', reason: 'not processed' })
    if (summary.done === 0) throw new InvalidImageError(`no image could be processed: ${summary.failures.map(f => `${nameOnly(f.input)}: ${f.message}`).join('; ')}`)
    const filename = downloadName(job.ops, { images: states.length })
    const zip = join(dir, filename)
    await zipWithReport(join(dir, 'out'), zip, { text: reportText(`${job.ops} on ${states.length} images`, states), json: { ops: job.ops, files: states.map(({ preview: _, ...f }) => f) } })
    await rm(join(dir, 'out'), { recursive: true, force: true })
    job.result = { type: 'application/zip', filename, bytes: (await stat(zip)).size, path: zip }
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

function sameKey (given: string | undefined, key: string): boolean {
  if (given === undefined) return false
  const a = Buffer.from(given)
  const b = Buffer.from(key)
  return a.length === b.length && timingSafeEqual(a, b)
}
