import { extract, freeBuffer, runPrelude, type JobPlan, type RawImage, type Rect } from '../imaging/index.ts'
import { packPixels, type PixelEncoding } from '../protocol/pixels.ts'
import { tileChecksum } from '../protocol/checksum.ts'

/** A tile's haloed input as it goes out with a grant; `checksum` (of the raw pixels) for a link, not in memory. */
export interface TilePixelsOut {
  body: Uint8Array
  encoding?: PixelEncoding
  checksum?: string
}

/** Where a job's grants get their tiles' input pixels. */
export interface TilePixelSource {
  /** Settles once pixels can be cut (the input decoded, its geometry run): no tile is granted before. */
  readonly ready: Promise<void>
  /**
   * The pixels of `rect` of the tiled image for a worker: in memory (this
   * peer's own), raw on a link on this machine, or compressed where that saves
   * a tenth on one that leaves it.
   */
  haloed: (rect: Rect, to: 'memory' | 'raw' | 'compressed') => Promise<TilePixelsOut>
}

/**
 * A job's tiled image on its coordinator: the input decoded once (shared by
 * every job here on the same file) and the prelude (geometry) run once on it.
 * Every worker, this peer's own too, gets the pixels it computes from here, a
 * haloed tile at a time, so the swarm decodes a job's input once whatever its
 * size, and no worker holds a whole image.
 */
export class TilePixels implements TilePixelSource {
  /** Settles once the tiled image is ready; a decode or prelude that fails rejects it. */
  readonly ready: Promise<void>
  private image: RawImage | undefined
  /** The prelude's output is this job's own (the decoded input may be shared with other jobs here). */
  private ownsImage = false
  /** Bytes of compressed pixels sent, and the raw bytes they stand for: what compression saved on the links. */
  readonly sent = { raw: 0, wire: 0 }

  constructor (decoded: () => Promise<RawImage>, plan: JobPlan) {
    this.ready = (async () => {
      const input = await decoded()
      this.image = await runPrelude(input, plan)
      this.ownsImage = this.image !== input
    })()
    this.ready.catch(() => {})
  }

  async haloed (rect: Rect, to: 'memory' | 'raw' | 'compressed'): Promise<TilePixelsOut> {
    await this.ready
    const image = this.image
    if (image === undefined) throw new Error('the job is over: its pixels are gone')
    const cut = extract(image, rect)
    // A tile that is the whole image is the image itself: a copy, which the worker, the wire and zstd may free or hold as theirs.
    const data = cut === image ? Buffer.from(image.data) : cut.data
    if (to === 'memory') return { body: data }
    const checksum = tileChecksum(data)
    const packed = to === 'compressed' ? packPixels(data) : { body: data }
    this.sent.raw += data.length
    this.sent.wire += packed.body.length
    if (packed.body !== data) freeBuffer(data)
    return { ...packed, checksum }
  }

  /** The job is over, or every tile is in: the image goes (the input itself goes with its last hold). */
  release (): void {
    if (this.ownsImage) freeBuffer(this.image?.data)
    this.image = undefined
  }
}
