import { createHash } from 'node:crypto'
import { InvalidImageError } from '../errors.ts'
import { decodeImage, formatName, type PixelFormat, type RawImage } from '../imaging/index.ts'

/** What a job's input must decode to: what its coordinator read in the header. */
export interface InputShape {
  width: number
  height: number
  format: PixelFormat
}

/** Decodes a job's input file to raw pixels; the simulator swaps in a cost model. */
export type InputDecoder = (file: Buffer, shape: InputShape, maxPixels: number) => Promise<RawImage>

export const decodeInput: InputDecoder = async (file, _shape, maxPixels) => (await decodeImage(file, { maxPixels })).image

/** A job input's identity: workers check what they were sent against it, whoever sent it. */
export function inputDigest (file: Uint8Array): string {
  return createHash('sha256').update(file).digest('hex')
}

interface Entry {
  file: Buffer
  decoded: Promise<RawImage> | undefined
  holds: number
}

/** One job's (or one worker's) hold on an input; the input goes when its last hold is released. */
export interface InputHold {
  readonly sha256: string
  readonly file: Buffer
  /** The pixels, decoded once per peer however many jobs, lanes and coordinators want them. */
  decoded: () => Promise<RawImage>
  release: () => void
}

/**
 * The input files of the jobs this peer coordinates or works on, by digest,
 * and their decoded pixels. A coordinator ships the compressed file once per
 * worker; each worker decodes it once and cuts its own tiles from it, so no
 * raw input pixels travel and the coordinator decodes nothing for others.
 */
export class InputStore {
  private readonly entries = new Map<string, Entry>()
  private readonly decode: InputDecoder
  private readonly maxPixels: number

  constructor (options: { decode: InputDecoder, maxPixels: number }) {
    this.decode = options.decode
    this.maxPixels = options.maxPixels
  }

  /** Holds `file`, whose digest the caller has checked to be `sha256`; `shape` is what it must decode to. */
  hold (sha256: string, file: Buffer, shape: InputShape): InputHold {
    let entry = this.entries.get(sha256)
    if (entry === undefined) {
      entry = { file, decoded: undefined, holds: 0 }
      this.entries.set(sha256, entry)
    }
    return this.handle(sha256, entry, shape)
  }

  /** A hold on an input this peer has already, if it has it. */
  holdIfHere (sha256: string, shape: InputShape): InputHold | undefined {
    const entry = this.entries.get(sha256)
    return entry === undefined ? undefined : this.handle(sha256, entry, shape)
  }

  private handle (sha256: string, entry: Entry, shape: InputShape): InputHold {
    entry.holds++
    let released = false
    return {
      sha256,
      file: entry.file,
      decoded: async () => {
        if (entry.decoded === undefined) {
          entry.decoded = this.decode(entry.file, shape, this.maxPixels)
          // A failed decode is every holder's to see; it is not retried.
          entry.decoded.catch(() => {})
        }
        const image = await entry.decoded
        if (image.width !== shape.width || image.height !== shape.height || image.channels !== shape.format.channels || image.depth !== shape.format.depth) {
          throw new InvalidImageError(`the input decodes here to ${image.width}x${image.height} ${formatName(image)}, not the ${shape.width}x${shape.height} ${formatName(shape.format)} its header says`)
        }
        return image
      },
      release: () => {
        if (released) return
        released = true
        if (--entry.holds === 0 && this.entries.get(sha256) === entry) this.entries.delete(sha256)
      },
    }
  }

  /** An input's file, if this peer has it: another peer may fetch it from here. */
  fileOf (sha256: string): Buffer | undefined {
    return this.entries.get(sha256)?.file
  }

  /** Inputs held now, and their compressed bytes. */
  get stats (): { inputs: number, bytes: number } {
    let bytes = 0
    for (const e of this.entries.values()) bytes += e.file.length
    return { inputs: this.entries.size, bytes }
  }
}
