import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { DEFAULT_MAX_UPLOAD_BYTES, MAX_TILE_BODY_BYTES } from '../common/defaults.ts'
import { JobCancelledError, JobFailedError, TileswarmError, isUserFacing } from '../common/errors.ts'
import { semaphore } from '../imaging/pixels/gate.ts'
import { sharpLib } from '../imaging/pixels/sharp-lib.ts'
import { PeerTries } from './attempts.ts'
import type { BatchEvent, BatchRequest, BatchSummary } from './batch-events.ts'
import { openSink, type BatchItem, type BatchSink } from './batch-plan.ts'
import { Tally } from './batch-tally.ts'
import { sendWholeImages } from './batch-whole.ts'
import { runLocal } from './local.ts'
import { submitToSwarm, type SwarmSubmitOptions } from './submit.ts'
import { checkPriority } from './options.ts'

/** Image headers read at once as a batch is planned. */
const HEADER_READS = 8

/** Exit status of a batch in which some images failed (the others are written). */
export const BATCH_INCOMPLETE_EXIT = 3

/** Images larger than this many megapixels are tiled across the swarm, one job each; smaller ones go whole to one peer each. */
export const DEFAULT_TILE_ABOVE_MP = 40

export interface BatchSubmitOptions extends SwarmSubmitOptions {
  tileAboveMp?: number
  onBatchEvent?: (e: BatchEvent) => void
}

/** How the batch's images are split, once existing outputs are skipped. */
async function prepare (request: BatchRequest, sink: BatchSink, emit: (e: BatchEvent) => void, tileAboveMp: number): Promise<{ whole: BatchItem[], tiled: BatchItem[], skipped: number, pixels: Map<BatchItem, number> }> {
  const whole: BatchItem[] = []
  const tiled: BatchItem[] = []
  const pixels = new Map<BatchItem, number>()
  let skipped = 0
  // The headers read a few at once: one at a time, a folder of photos would wait on every file's round trips.
  const gate = semaphore(HEADER_READS)
  const looked = await Promise.all(request.plan.items.map(async item => await gate(async () => {
    if (request.skipExisting && await sink.exists(item.output)) return { item, skip: true }
    // The header only; one sharp cannot read goes whole, and its peer says why.
    return { item, skip: false, meta: await sharpLib()(item.input).metadata().catch(() => undefined) }
  })))
  for (const { item, skip, meta } of looked) {
    if (skip) {
      skipped++
      emit({ event: 'image-skipped', input: item.input, output: sink.describe(item.output) })
      continue
    }
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

/**
 * Sends a batch to the swarm as one job on one connection: each image whole
 * to one peer (the coordinator asks for images as it has room, and sends
 * each output as it is done, written at once); images over `tileAboveMp`
 * after, each tiled as one job. If the coordinator is lost, the images not
 * yet back resume on another peer. A bad image fails alone.
 */
export async function submitBatch (request: BatchRequest, options: BatchSubmitOptions): Promise<BatchSummary> {
  if (options.priority !== undefined) checkPriority(options.priority, 'priority')
  const started = performance.now()
  const emit = options.onBatchEvent ?? (() => {})
  const tries = new PeerTries(options)
  const sink = await openSink(request.plan.target)
  let closed = false
  let tally: Tally | undefined
  await tries.start()
  try {
    tries.noteUnchecked(emit)
    const { whole, tiled, skipped, pixels } = await prepare(request, sink, emit, options.tileAboveMp ?? DEFAULT_TILE_ABOVE_MP)
    const counts = new Tally(whole.length + tiled.length, emit)
    tally = counts
    await sendWholeImages(tries, { request, sink, counts, pixels, maxUploadBytes: options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES, idleTimeoutMs: options.idleTimeoutMs, ...(options.priority !== undefined ? { priority: options.priority } : {}), emit }, whole)
    await sendTiled(tries, { request, sink, counts, pixels, emit, options }, tiled)
    await sink.close()
    closed = true
    return counts.summary(skipped, started)
  } catch (err) {
    // What is written stays; the user hears how far it got, and how to go on.
    if (tally !== undefined && request.plan.target.kind === 'dir') emit({ event: 'note', message: `the batch stopped with ${tally.done} images written to ${request.plan.target.path} and ${tally.failures.length} failed; run the same command with --skip-existing to do the rest` })
    throw err
  } finally {
    if (!closed) await sink.discard()
    await tries.stop()
  }
}

/** Large images: each tiled across the swarm as a job of its own, on this client's connections. */
async function sendTiled (tries: PeerTries, batch: { request: BatchRequest, sink: BatchSink, counts: Tally, pixels: Map<BatchItem, number>, emit: (e: BatchEvent) => void, options: SwarmSubmitOptions }, items: BatchItem[]): Promise<void> {
  const { request, sink, counts, emit } = batch
  let scratch: string | undefined
  for (const item of items) {
    try {
      let output = join(request.plan.target.path, item.output)
      if (request.plan.target.kind === 'zip') {
        scratch ??= await mkdtemp(join(tmpdir(), 'tileswarm-batch-'))
        output = join(scratch, 'out')
      } else {
        await mkdir(dirname(output), { recursive: true })
      }
      const done = await submitToSwarm({ steps: request.steps, input: item.input, output, format: item.format, quality: request.quality, ...(request.strip === true ? { strip: true } : {}) }, {
        ...batch.options,
        // The peers the batch has learned of too: the one given may be gone by now.
        peer: tries.roster.addresses,
        node: tries.node,
        onEvent: e => { if (e.event === 'progress') emit({ event: 'tiles', input: item.input, done: e.done, total: e.total }) },
      })
      if (request.plan.target.kind === 'zip') await sink.write(item.output, await readFile(output))
      emit({ event: 'image', input: item.input, output: sink.describe(item.output), width: done.width, height: done.height, bytes: done.bytes, by: Object.keys(done.tilesByPeer)[0] ?? '', recovered: false })
      counts.ok(batch.pixels.get(item) ?? 0, Object.keys(done.tilesByPeer))
    } catch (err) {
      // One image that cannot be done; a swarm that cannot be reached, or a cancel, ends the batch.
      if (err instanceof JobCancelledError) throw err
      if (!(err instanceof JobFailedError) && !(err instanceof TileswarmError && ['InvalidImageError', 'LimitExceededError'].includes(err.name))) throw err
      counts.failed(item.input, err)
    }
  }
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })
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
          const result = await runLocal({ steps: request.steps, input: item.input, output, format: item.format, quality: request.quality, ...(request.strip === true ? { strip: true } : {}) }, { maxPixels: options.maxPixels, maxUploadBytes: options.maxUploadBytes, threads: options.threads })
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
