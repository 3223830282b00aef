import { ProtocolError, oneLine } from '../common/errors.ts'
import { TILE_MEMO_BYTES } from '../common/defaults.ts'
import { processTile, freeBuffer, TileMemo, type Gate, type RawImage, type Tile, type TileWork } from '../imaging/index.ts'
import { contextDigest, tileChecksum } from '../protocol/checksum.ts'
import { packPixels, type PixelEncoding } from '../protocol/pixels.ts'
import { claimLoop, type LaneContext, type LaneEnd, type UnitStatus } from './claim-loop.ts'
import type { CoordinatorLink, GrantedWork } from './coordinator-link.ts'
import { isComputeFailure } from './failure.ts'
import type { TileSession } from './job-session.ts'

/**
 * Computes a tile's core (or its phase's summary) from its haloed pixels, its
 * compute passing through `gate`; the simulator swaps in a cost model.
 */
export type TileProcessor = (pixels: RawImage, tile: Tile, work: TileWork, gate: Gate) => Promise<RawImage | Uint8Array>

/** sharp's, each pass through the gate. */
export const gatedTileProcessor: TileProcessor = async (pixels, tile, work, gate) => await processTile(pixels, tile, work, { gate })

export interface TileLaneContext extends LaneContext {
  process: TileProcessor
}

function isRaw (out: RawImage | Uint8Array): out is RawImage {
  return !(out instanceof Uint8Array)
}

/** Computing that throws for the job's own reasons is told to the coordinator, which fails the job if it is not this peer's trouble alone. */
async function computing<T> (link: CoordinatorLink, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (isComputeFailure(err)) await link.reportFailure(oneLine((err as Error).message)).catch(() => {})
    throw err
  }
}

/** The memo for a grant's start of the phases; a lane still on a tile of an earlier start keeps nothing for later. */
function memoFor (memos: TileSession['memos'], work: GrantedWork): TileMemo | undefined {
  if (work.restart > memos.restart) {
    memos.restart = work.restart
    memos.memo = new TileMemo(TILE_MEMO_BYTES)
  }
  return work.restart === memos.restart ? memos.memo : undefined
}

/** A lane on a tiled job: a tile's pixels as granted, computed, sent. */
export async function tileLane (session: TileSession, lane: TileLaneContext): Promise<LaneEnd> {
  return await claimLoop(session.link, lane, async reply => {
    if (reply.kind !== 'grant') throw new ProtocolError('a tiled job granted a whole image')
    return await doTile(session, reply.work, lane)
  }, { prefetch: true })
}

async function doTile ({ link, memos }: TileSession, work: GrantedWork, lane: TileLaneContext): Promise<UnitStatus> {
  // Tiles computed in JavaScript, on the in-memory channel to this peer's own
  // coordinator, never leave the microtask queue: give I/O its turn each tile.
  await new Promise(resolve => setImmediate(resolve))
  const memo = memoFor(memos, work)
  const { pixels } = work
  const out = await computing(link, async () => await lane.process(pixels, work.tile, { plan: link.plan, phase: work.phase, contexts: work.contexts, ...(memo !== undefined ? { memo } : {}) }, lane.gate))
  const data = isRaw(out) ? out.data : Buffer.from(out.buffer, out.byteOffset, out.byteLength)
  // The granted pixels are this tile's alone (an operation may hand them back as its result).
  freeBuffer(pixels.data, [data])
  const checksum = tileChecksum(data)
  // Kept for a later coordinator if this one dies (one in this process dies with us): under its phase, and a later
  // phase's with its contexts' digest, worth something only where the next coordinator reduces the same.
  const keep = lane.cache !== undefined && link.ref.coordinator !== lane.peerId
  if (keep) lane.cache!.put(link.info.jobKey, work.tile.index, checksum, data, { phase: work.phase, ...(work.phase > 0 ? { context: contextDigest(work.contexts) } : {}) })
  // Stopping handed the lease back already. A lease lost otherwise (a renewal refused or unanswered)
  // is still worth the send: the coordinator takes a late result for a tile not yet done.
  if (lane.signal.aborted) return undefined
  lane.keeper.settle(work.leaseId)
  // In memory, or on this machine, the coordinator takes the bytes as they are; off it, fewer bytes are worth a compression.
  const packed: { body: Uint8Array, encoding?: PixelEncoding } = link.compress ? packPixels(data) : { body: data }
  const status = await link.result({ phase: work.phase, tile: work.tile.index, leaseId: work.leaseId, checksum, body: packed.body, encoding: packed.encoding })
  // Acked: the coordinator has every byte (a reply comes only after the whole body).
  if (!keep) freeBuffer(data)
  return status
}
