import { createHash } from 'node:crypto'
import { InvalidImageError, LimitExceededError, PeerBusyError } from '../common/errors.ts'
import { sizeText } from '../common/units.ts'
import { decodeImage, formatName, freeBuffer, rawByteLength, type PixelFormat, type RawImage } from '../imaging/index.ts'

/** What a job's input must decode to: what its coordinator read in the header. */
export interface InputShape {
  width: number
  height: number
  format: PixelFormat
  /** Decoded in the file's own colour space, its ICC profile kept for the output (else converted to sRGB). */
  fileColours?: boolean
}

/** Decodes a job's input file to raw pixels; the simulator swaps in a cost model. */
export type InputDecoder = (file: Buffer, shape: InputShape, maxPixels: number) => Promise<RawImage>

export const decodeInput: InputDecoder = async (file, shape, maxPixels) => (await decodeImage(file, { maxPixels, strip: shape.fileColours !== true })).image

/** A job input's identity: the same file, pipeline and tiles give the same results, whoever coordinates. */
export function inputDigest (file: Uint8Array): string {
  return createHash('sha256').update(file).digest('hex')
}

interface Entry {
  file: Buffer
  /** What its decoded pixels take. */
  rawBytes: number
  decoded: Promise<RawImage> | undefined
  holds: number
}

/** One job's hold on an input; the input goes when its last hold is released. */
export interface InputHold {
  readonly file: Buffer
  /** The pixels, decoded once however many jobs here want them. */
  decoded: () => Promise<RawImage>
  release: () => void
}

/**
 * The input files of the jobs this peer coordinates, by digest, and their
 * decoded pixels: the only decode of a job's input in the swarm (workers get
 * their tiles' pixels with their grants). Two jobs on the same file share one
 * decode. Gets 'released' when an input goes.
 */
export class InputStore extends EventTarget {
  private readonly entries = new Map<string, Entry>()
  private readonly decode: InputDecoder
  private readonly maxPixels: number

  constructor (options: { decode: InputDecoder, maxPixels: number }) {
    super()
    this.decode = options.decode
    this.maxPixels = options.maxPixels
  }

  /** Holds `file`, whose digest the caller has checked to be `sha256`; `shape` is what it must decode to. */
  hold (sha256: string, file: Buffer, shape: InputShape): InputHold {
    let entry = this.entries.get(sha256)
    if (entry === undefined) {
      entry = { file, rawBytes: rawByteLength(shape.width, shape.height, shape.format), decoded: undefined, holds: 0 }
      this.entries.set(sha256, entry)
    }
    entry.holds++
    let released = false
    const held = entry
    return {
      file: held.file,
      decoded: async () => {
        if (held.decoded === undefined) {
          held.decoded = this.decode(held.file, shape, this.maxPixels)
          // A failed decode is every holder's to see; it is not retried.
          held.decoded.catch(() => {})
        }
        const image = await held.decoded
        if (image.width !== shape.width || image.height !== shape.height || image.channels !== shape.format.channels || image.depth !== shape.format.depth) {
          throw new InvalidImageError(`the input decodes here to ${image.width}x${image.height} ${formatName(image)}, not the ${shape.width}x${shape.height} ${formatName(shape.format)} its header says`)
        }
        return image
      },
      release: () => {
        if (released) return
        released = true
        if (--held.holds === 0 && this.entries.get(sha256) === held) {
          this.entries.delete(sha256)
          // Nobody can reach the pixels now: their memory goes at once, not at some later collection.
          void held.decoded?.then(image => { freeBuffer(image.data) }, () => {})
          this.dispatchEvent(new Event('released'))
        }
      },
    }
  }

  /**
   * Room for one more input of `shape` within `budget` (--input-memory-mb),
   * and `besides` (a geometry step's images)? One held here already takes none
   * of its own. One larger than the budget is refused
   * for good; one that does not fit now, as busy: another peer may have room.
   */
  checkRoom (sha256: string, shape: InputShape, budget: number, besides = 0): void {
    const needs = (this.entries.has(sha256) ? 0 : rawByteLength(shape.width, shape.height, shape.format)) + besides
    if (needs > budget) throw new LimitExceededError(`its input decodes to ${sizeText(needs)}, over this peer's --input-memory-mb of ${sizeText(budget)}`)
    if (this.decodedBytes + needs > budget) throw new PeerBusyError(`its input would take ${sizeText(needs)} decoded, and other jobs' inputs hold ${sizeText(this.decodedBytes)} of this peer's ${sizeText(budget)} (--input-memory-mb); try again later or submit to another peer`)
  }

  /** Whether an input is held here now. */
  has (sha256: string): boolean {
    return this.entries.has(sha256)
  }

  /** What the inputs held here take decoded. */
  get decodedBytes (): number {
    let bytes = 0
    for (const entry of this.entries.values()) bytes += entry.rawBytes
    return bytes
  }

  /** Inputs held now. */
  get size (): number { return this.entries.size }
}
