import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { sharpLib } from '../imaging/pixels/sharp-lib.ts'
import { DEFAULT_DIAL_TIMEOUT_MS, DEFAULT_MAX_UPLOAD_BYTES, MAX_TILE_BODY_BYTES, SUBMIT_IDLE_MS } from '../common/defaults.ts'
import { JobFailedError, LimitExceededError, ProtocolError, TileswarmError, isUserFacing, oneLine } from '../common/errors.ts'
import { toSpecs, type Step } from '../imaging/index.ts'
import { createClientNode } from '../net/node.ts'
import { PROTOCOL_VERSION } from '../protocol/constants.ts'
import { FramedChannel } from '../protocol/framing.ts'
import { submitClientWire } from '../protocol/wire.ts'
import { openSink, type BatchItem, type BatchPlan, type BatchSink } from './batch-plan.ts'
import { runLocal } from './local.ts'
import { Ended, PeerRoster, refusal, type Candidate, type RosterEvent } from './roster.ts'
import { lostOrUnreachable, submitToSwarm, uncheckedNote, type SwarmSubmitOptions } from './submit.ts'

/** Exit status of a batch in which some images failed (the others are written). */
export const BATCH_INCOMPLETE_EXIT = 3

/** Images larger than this many megapixels are tiled across the swarm, one job each; smaller ones go whole to one peer each. */
export const DEFAULT_TILE_ABOVE_MP = 40

export type BatchEvent =
  /** `leftOut`: files not taken (not images, or hidden); `folders`: subfolders not taken (no -r). */
  | { event: 'batch', images: number, skipped: number, whole: number, tiled: number, leftOut: string[], folders: string[] }
  | { event: 'connected', peer: string, client: string }
  | { event: 'note', message: string }
  | { event: 'started', jobId: string }
  | { event: 'image', input: string, output: string, width: number, height: number, bytes: number, by: string, recovered: boolean }
  | { event: 'image-failed', input: string, name: string, message: string }
  | { event: 'image-skipped', input: string, output: string }
  /** The images done (or failed) of the images to do, the megapixels in, and the peers that have delivered. */
  | { event: 'batch-progress', done: number, failed: number, total: number, megapixels: number, workers: number }
  /** A large image goes through the swarm tiled: its tiles' progress. */
  | { event: 'tiles', input: string, done: number, total: number }
  | RosterEvent
  | { event: 'resumed', coordinator: string, on: string, images: number }
  | { event: 'batch-done', done: number, skipped: number, failed: number, ms: number, megapixels: number, failures: Array<{ input: string, message: string }> }

export interface BatchSummary {
  done: number
  skipped: number
  failures: Array<{ input: string, message: string }>
  ms: number
  megapixels: number
}

export interface BatchRequest {
  plan: BatchPlan
  steps: Step[]
  quality: number
  skipExisting: boolean
}

/** How the batch's images are split, once existing outputs are skipped. */
async function prepare (request: BatchRequest, sink: BatchSink, emit: (e: BatchEvent) => void, tileAboveMp: number): Promise<{ whole: BatchItem[], tiled: BatchItem[], skipped: number, pixels: Map<BatchItem, number> }> {
  const whole: BatchItem[] = []
  const tiled: BatchItem[] = []
  const pixels = new Map<BatchItem, number>()
  let skipped = 0
  for (const item of request.plan.items) {
    if (request.skipExisting && await sink.exists(item.output)) {
      skipped++
      emit({ event: 'image-skipped', input: item.input, output: sink.describe(item.output) })
      continue
    }
    // The header only; one sharp cannot read goes whole, and its peer says why.
    const meta = await sharpLib()(item.input).metadata().catch(() => undefined)
    const n = meta !== undefined ? meta.width * meta.height : 0
    pixels.set(item, n)
    // Large in pixels, or in raw bytes (16-bit, alpha): too much for one peer's task.
    const raw = meta !== undefined ? n * (meta.channels ?? 3) * (meta.depth === 'uchar' || meta.depth === 'char' ? 1 : meta.depth === 'ushort' || meta.depth === 'short' ? 2 : 4) : 0
    if (n > tileAboveMp * 1e6 || raw > MAX_TILE_BODY_BYTES) tiled.push(item)
    else whole.push(item)
  }
  emit({ event: 'batch', images: whole.length + tiled.length, skipped, whole: whole.length, tiled: tiled.length, leftOut: request.plan.leftOut, folders: request.plan.folders })
  return { whole, tiled, skipped, pixels }
}

/** Counts as the batch goes; says so to the user. */
class Tally {
  done = 0
  failures: Array<{ input: string, message: string }> = []
  pixelsDone = 0
  /** Peers at work, as the coordinator last said (or, before it says, those that delivered). */
  workers = 0
  private told = false
  private readonly by = new Set<string>()
  private readonly total: number
  private readonly emit: (e: BatchEvent) => void
  constructor (total: number, emit: (e: BatchEvent) => void) {
    this.total = total
    this.emit = emit
  }

  ok (pixels: number, by: string[]): void {
    for (const peer of by) this.by.add(peer)
    if (!this.told) this.workers = this.by.size
    this.done++
    this.pixelsDone += pixels
    this.progress()
  }

  /** The coordinator's count of peers at work. */
  heard (workers: number): void {
    this.told = true
    this.workers = workers
    this.progress()
  }

  failed (input: string, err: { name: string, message: string }): void {
    this.failures.push({ input, message: oneLine(err.message) })
    this.emit({ event: 'image-failed', input, name: err.name, message: oneLine(err.message) })
    this.progress()
  }

  /** The batch is over: its summary, said as the last event. */
  summary (skipped: number, started: number): BatchSummary {
    const summary = { done: this.done, skipped, failures: this.failures, ms: performance.now() - started, megapixels: this.pixelsDone / 1e6 }
    this.emit({ event: 'batch-done', done: summary.done, skipped, failed: summary.failures.length, ms: summary.ms, megapixels: summary.megapixels, failures: summary.failures })
    return summary
  }

  progress (): void {
    this.emit({ event: 'batch-progress', done: this.done, failed: this.failures.length, total: this.total, megapixels: this.pixelsDone / 1e6, workers: this.workers })
  }
}

/**
 * Sends a batch to the swarm as one job on one connection: each image whole
 * to one peer (the coordinator asks for images as it has room, and sends
 * each output as it is done, written at once); images over `tileAboveMp`
 * after, each tiled as one job. If the coordinator is lost, the images not
 * yet back resume on another peer. A bad image fails alone.
 */
export async function submitBatch (request: BatchRequest, options: SwarmSubmitOptions & { tileAboveMp?: number, onBatchEvent?: (e: BatchEvent) => void }): Promise<BatchSummary> {
  const started = performance.now()
  const emit = options.onBatchEvent ?? (() => {})
  const roster = new PeerRoster(Array.isArray(options.peer) ? options.peer : [options.peer], options.busyRounds)
  const dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  const maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES
  const sink = await openSink(request.plan.target)
  let closed = false
  let tally: Tally | undefined
  const node = options.node ?? await createClientNode({ dialTimeoutMs, swarmKey: options.swarmKey, privateKey: options.privateKey })
  try {
    if (options.node === undefined) for (const label of roster.unchecked) emit({ event: 'note', message: uncheckedNote(label) })
    const { whole, tiled, skipped, pixels } = await prepare(request, sink, emit, options.tileAboveMp ?? DEFAULT_TILE_ABOVE_MP)
    const counts = new Tally(whole.length + tiled.length, emit)
    tally = counts
    let pending = whole

    /** One try of the images still to do on one peer: over when every one is done or failed, or an Ended. */
    const attempt = async (candidate: Candidate, items: BatchItem[]): Promise<void> => {
      const stream = await roster.open(node, candidate, { dialTimeoutMs, swarmKey: options.swarmKey })
      const wire = submitClientWire(new FramedChannel(stream, { maxBodyBytes: 4 * 1024 * 1024 * 1024 }))
      let admitted = false
      let sent = 0
      let uploadLimit = maxUploadBytes
      const settled = new Set<BatchItem>()
      // Images go up as they are asked for, while outputs come down.
      let uploading: Promise<void> = Promise.resolve()
      const upload = async (item: BatchItem, index: number): Promise<void> => {
        let file: Buffer
        try {
          const size = (await stat(item.input)).size
          if (size > uploadLimit) throw new LimitExceededError(`${size} bytes is over the upload limit of ${uploadLimit} bytes (--max-upload-bytes${uploadLimit < maxUploadBytes ? ', the coordinating peer\'s' : ''})`)
          file = await readFile(item.input)
        } catch (err) {
          // Sent empty, so the batch's count holds; the failure is this client's word for it.
          settled.add(item)
          counts.failed(item.input, err instanceof TileswarmError ? err : { name: 'InvalidImageError', message: `cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` })
          file = Buffer.alloc(0)
        }
        await wire.send({ type: 'image', index, format: item.format }, file)
      }
      try {
        const resume = roster.resume
        if (resume !== undefined) emit({ event: 'resumed', coordinator: roster.resumeFrom!, on: candidate.label, images: items.length })
        else emit({ event: 'connected', peer: candidate.label, client: node.peerId.toString() })
        await wire.send({ type: 'batch', v: PROTOCOL_VERSION, ops: toSpecs(request.steps), quality: request.quality, images: items.length, ...(resume !== undefined ? { resume } : {}) })
        for (;;) {
          const { message: msg, body } = await wire.receive({ timeoutMs: options.idleTimeoutMs ?? SUBMIT_IDLE_MS })
          switch (msg.type) {
            case 'started':
              admitted = true
              uploadLimit = Math.min(maxUploadBytes, msg.maxUploadBytes)
              emit({ event: 'started', jobId: msg.jobId })
              break
            case 'send': {
              const from = sent
              sent = Math.min(items.length, sent + msg.count)
              for (let i = from; i < sent; i++) uploading = uploading.then(async () => { await upload(items[i]!, i) })
              uploading.catch(() => {})
              break
            }
            case 'image-done': {
              const item = items[msg.index]
              if (item === undefined || body === undefined || body.length === 0 || settled.has(item)) throw new ProtocolError(`the coordinator sent image ${msg.index} unasked`)
              settled.add(item)
              await sink.write(item.output, body)
              emit({ event: 'image', input: item.input, output: sink.describe(item.output), width: msg.width, height: msg.height, bytes: body.length, by: msg.by, recovered: msg.recovered })
              counts.ok(pixels.get(item) ?? 0, [msg.by])
              break
            }
            case 'image-failed': {
              const item = items[msg.index]
              if (item === undefined) throw new ProtocolError(`the coordinator failed image ${msg.index}, not in the batch`)
              // This client's own reason (a file it could not read) stands.
              if (!settled.has(item)) {
                settled.add(item)
                counts.failed(item.input, msg)
              }
              break
            }
            case 'progress':
              counts.heard(msg.workers)
              break
            case 'peers':
              roster.heard(msg)
              break
            case 'end':
              await uploading
              await wire.channel.close().catch(() => {})
              return
            case 'error':
              throw refusal(msg.name, msg.message, admitted)
            default:
              throw new ProtocolError(`the coordinator sent '${msg.type}' in a batch`)
          }
        }
      } catch (err) {
        wire.channel.abort(err as Error)
        throw lostOrUnreachable(err, admitted, candidate.label)
      } finally {
        // What is not back goes to the next try (once this try's uploads have stopped: one may still be settling a file it could not read).
        await uploading.catch(() => {})
        pending = items.filter(item => !settled.has(item))
      }
    }

    while (pending.length > 0) {
      const candidate = await roster.next()
      try {
        await attempt(candidate, pending)
      } catch (err) {
        if (!(err instanceof Ended)) throw err
        roster.ended(candidate, err.ending, emit)
      }
    }

    // Large images: each tiled across the swarm as a job of its own, on this client's connections.
    let scratch: string | undefined
    for (const item of tiled) {
      try {
        let output = join(request.plan.target.path, item.output)
        if (request.plan.target.kind === 'zip') {
          scratch ??= await mkdtemp(join(tmpdir(), 'tileswarm-batch-'))
          output = join(scratch, 'out')
        } else {
          await mkdir(dirname(output), { recursive: true })
        }
        const done = await submitToSwarm({ steps: request.steps, input: item.input, output, format: item.format, quality: request.quality }, {
          ...options,
          // The peers the batch has learned of too: the one given may be gone by now.
          peer: roster.addresses,
          node,
          onEvent: e => { if (e.event === 'progress') emit({ event: 'tiles', input: item.input, done: e.done, total: e.total }) },
        })
        if (request.plan.target.kind === 'zip') await sink.write(item.output, await readFile(output))
        emit({ event: 'image', input: item.input, output: sink.describe(item.output), width: done.width, height: done.height, bytes: done.bytes, by: Object.keys(done.tilesByPeer)[0] ?? '', recovered: false })
        counts.ok(pixels.get(item) ?? 0, Object.keys(done.tilesByPeer))
      } catch (err) {
        // One image that cannot be done; a swarm that cannot be reached ends the batch.
        if (!(err instanceof JobFailedError) && !(err instanceof TileswarmError && ['InvalidImageError', 'LimitExceededError'].includes(err.name))) throw err
        counts.failed(item.input, err)
      }
    }
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })
    await sink.close()
    closed = true
    return counts.summary(skipped, started)
  } catch (err) {
    // What is written stays; the user hears how far it got, and how to go on.
    if (tally !== undefined && request.plan.target.kind === 'dir') emit({ event: 'note', message: `the batch stopped with ${tally.done} images written to ${request.plan.target.path} and ${tally.failures.length} failed; run the same command with --skip-existing to do the rest` })
    throw err
  } finally {
    if (!closed) await sink.discard()
    if (options.node === undefined) await node.stop()
  }
}

/** The batch in this process, image after image: the reference outputs, and the same folder, summary and exit status. */
export async function runLocalBatch (request: BatchRequest, options: { maxPixels: number, maxUploadBytes: number, threads: number, onBatchEvent?: (e: BatchEvent) => void }): Promise<BatchSummary> {
  const started = performance.now()
  const emit = options.onBatchEvent ?? (() => {})
  const sink = await openSink(request.plan.target)
  let closed = false
  try {
    const { whole, tiled, skipped, pixels } = await prepare(request, sink, emit, Infinity)
    const tally = new Tally(whole.length + tiled.length, emit)
    const scratch = await mkdtemp(join(tmpdir(), 'tileswarm-local-'))
    try {
      for (const item of whole) {
        const output = join(scratch, `out-${tally.done + tally.failures.length}`)
        try {
          const result = await runLocal({ steps: request.steps, input: item.input, output, format: item.format, quality: request.quality }, { maxPixels: options.maxPixels, maxUploadBytes: options.maxUploadBytes, threads: options.threads })
          const bytes = await readFile(output)
          await sink.write(item.output, bytes)
          emit({ event: 'image', input: item.input, output: sink.describe(item.output), width: result.width, height: result.height, bytes: result.bytes, by: 'local', recovered: false })
          tally.ok(pixels.get(item) ?? 0, ['this process'])
        } catch (err) {
          if (!isUserFacing(err)) throw err
          tally.failed(item.input, err as Error)
        }
      }
    } finally {
      await rm(scratch, { recursive: true, force: true })
    }
    await sink.close()
    closed = true
    return tally.summary(skipped, started)
  } finally {
    if (!closed) await sink.discard()
  }
}
