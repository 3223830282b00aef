import { OFFERS_IN_FLIGHT, TILE_MEMO_BYTES, WORKER_REQUEST_TIMEOUT_MS } from '../common/defaults.ts'
import { LimitExceededError } from '../common/errors.ts'
import { shortId, type Log } from '../common/log.ts'
import { TileMemo } from '../imaging/index.ts'
import type { Channel } from '../protocol/framing.ts'
import { MAX_HELD_OUTPUTS } from '../protocol/constants.ts'
import { admitTiledJob, type WorkerLimits } from './admission.ts'
import { CoordinatorLink, type HeldTiles } from './coordinator-link.ts'
import type { JobRef } from '../protocol/job-ref.ts'
import type { ResultCache } from './result-cache.ts'
import { tilesIn } from '../protocol/tile-set.ts'

/** A worker's hold on a tiled job: its link to the coordinator (each grant brings its tile's pixels). */
export interface TileSession {
  kind: 'tiles'
  link: CoordinatorLink
  /**
   * What a summary phase leaves for the next on the same tiles (the
   * coordinator hands a peer the tiles it summarised), kept per start of the
   * job's phases: a start over (a liar's summaries were reduced) makes the
   * earlier one's stale.
   */
  memos: { restart: number, memo: TileMemo }
}

/** A batch needs no input: each task brings its image's file. */
export interface BatchSession {
  kind: 'batch'
  link: CoordinatorLink
}

export type JobSession = TileSession | BatchSession

export interface SessionOptions {
  /** This peer: results for its own coordinator are taken from the cache, not copied. */
  peerId: string
  limits: WorkerLimits
  /** Results kept for a later coordinator of the same job. */
  cache?: ResultCache | undefined
  /** Opens a tile-protocol channel to a job's coordinator; `compress`: results are worth compressing on it. */
  connect: (ref: JobRef) => Promise<{ channel: Channel, compress: boolean }>
  log?: Log | undefined
}

/** Joins a job and hands over what this peer held of it. */
export async function openSession (ref: JobRef, options: SessionOptions): Promise<JobSession> {
  const { channel, compress } = await options.connect(ref)
  const link = new CoordinatorLink(channel, ref, { requestTimeoutMs: WORKER_REQUEST_TIMEOUT_MS, compress })
  try {
    const { cache } = options
    const held = ref.jobKey !== undefined ? cache?.heldPhases(ref.jobKey) : undefined
    const { reserved } = await link.join(held !== undefined && held.size > 0 ? held : undefined)
    if (link.batch !== undefined) return await joinBatch(link, options)
    return await joinTiled(link, reserved, options)
  } catch (err) {
    // A link that never got going is closed, not left to the coordinator's idle timeout.
    await link.close().catch(() => {})
    throw err
  }
}

async function joinBatch (link: CoordinatorLink, options: SessionOptions): Promise<BatchSession> {
  options.log?.(`batch ${link.ref.jobId}: working on it (${link.batch!.images} images, coordinator ${shortId(link.ref.coordinator)})`)
  // Before any claim: a resumed batch reserves for this peer the images whose outputs it kept.
  await link.held(options.cache?.heldOutputs(MAX_HELD_OUTPUTS) ?? [])
  return { kind: 'batch', link }
}

async function joinTiled (link: CoordinatorLink, reserved: HeldTiles | undefined, options: SessionOptions): Promise<TileSession> {
  const { info, plan, ref } = link
  const admission = admitTiledJob({ image: info, cut: plan }, options.limits)
  if (!admission.admitted) throw new LimitExceededError(admission.reason)
  options.log?.(`job ${ref.jobId}: working on it (${info.tiles} tiles, coordinator ${shortId(ref.coordinator)})`)
  const { cache } = options
  if (cache !== undefined) {
    // A job in phases: what this worker kept of a later phase is asked for as that phase starts.
    link.offering = async later => { await offerHeld(link, later, cache, options) }
    // The coordinator's own summaries, which die with it: kept like this worker's own.
    link.keeping = kept => { for (const k of kept) cache.put(link.info.jobKey, k.tile, k.checksum, k.data, { phase: k.phase, ...(k.context !== undefined ? { context: k.context } : {}) }) }
    if (reserved !== undefined) await offerHeld(link, reserved, cache, options)
  }
  return { kind: 'tiles', link, memos: { restart: 0, memo: new TileMemo(TILE_MEMO_BYTES) } }
}

/** Hands the job's new coordinator the results of a phase it reserved for us. */
async function offerHeld (link: CoordinatorLink, reserved: HeldTiles, cache: ResultCache, options: SessionOptions): Promise<void> {
  const local = link.ref.coordinator === options.peerId
  const { phase } = reserved
  const tiles = tilesIn(reserved.tiles)
  const { jobKey } = link.info
  let offered = 0
  // A few in flight at once: one round trip each, one after another, would take a while.
  const send = async (): Promise<void> => {
    for (let tile = tiles.shift(); tile !== undefined; tile = tiles.shift()) {
      // In memory, the coordinator takes the buffer itself.
      const held = local ? cache.take(jobKey, tile, phase) : cache.get(jobKey, tile, phase)
      if (held !== undefined && await link.offer({ phase, tile, checksum: held.checksum, context: held.context }, held.data) === 'accepted') offered++
    }
  }
  await Promise.all(Array.from({ length: OFFERS_IN_FLIGHT }, send))
  cache.stats.offered += offered
  options.log?.(`job ${link.ref.jobId}: handed over ${offered} tiles${link.plan.phases.length > 1 ? ` of phase ${phase + 1}` : ''} finished for an earlier coordinator`)
}

/** A session is over: its link closes. */
export async function endSession (session: JobSession): Promise<void> {
  await session.link.close().catch(() => {})
}
