import { createHash } from 'node:crypto'
import { WORKER_REQUEST_TIMEOUT_MS } from '../defaults.ts'
import { InvalidImageError, NetworkError, ProtocolError } from '../errors.ts'
import type { Channel } from '../protocol/framing.ts'
import { decodeImage, formatName, rawByteLength, type PixelFormat, type RawImage } from '../imaging/index.ts'

/** What a job's input must decode to: what its coordinator read in the header. */
export interface InputShape {
  width: number
  height: number
  format: PixelFormat
}

/** Decodes a job's input file to raw pixels; the simulator swaps in a cost model. */
export type InputDecoder = (file: Buffer, shape: InputShape, maxPixels: number) => Promise<RawImage>

export const decodeInput: InputDecoder = async (file, _shape, maxPixels) => (await decodeImage(file, { maxPixels })).image

/** The slowest link a transfer of a job's input allows for, past the request timeout: 1 MB/s. */
const INPUT_MIN_BYTES_PER_MS = 1000

/** How long sending or fetching a job's input of `bytes` may take. */
export function inputTransferMs (bytes: number): number {
  return WORKER_REQUEST_TIMEOUT_MS + bytes / INPUT_MIN_BYTES_PER_MS
}

/** A job's input, whoever sent it, is only taken if it is the one the job info names. */
export function checkedInput (body: Buffer | undefined, want: { bytes: number, sha256: string }, what: string): Buffer {
  if (body === undefined || body.length !== want.bytes || inputDigest(body) !== want.sha256) throw new ProtocolError(`the input of ${what} does not match its digest`)
  return body
}

/** Sends a job's input; past its deadline the channel is aborted: a reader that stops reading holds no upload for ever. */
export async function sendInput (channel: Channel, send: () => Promise<void>, bytes: number): Promise<void> {
  const deadline = setTimeout(() => { channel.abort(new NetworkError(`the input took over ${Math.round(inputTransferMs(bytes) / 1000)} s to send`)) }, inputTransferMs(bytes))
  try {
    await send()
  } finally {
    clearTimeout(deadline)
  }
}

/** A job input's identity: workers check what they were sent against it, whoever sent it. */
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

/** One job's (or one worker's) hold on an input; the input goes when its last hold is released. */
export interface InputHold {
  readonly file: Buffer
  /** The pixels, decoded once per peer however many jobs, lanes and coordinators want them. */
  decoded: () => Promise<RawImage>
  release: () => void
}

/**
 * The input files of the jobs this peer coordinates or works on, by digest,
 * and their decoded pixels. A coordinator ships the compressed file once per
 * worker (or names peers that have it); each worker decodes it once and cuts
 * its own tiles from it, so no raw input pixels travel. Gets 'released' when
 * an input goes.
 */
export class InputStore extends EventTarget {
  private readonly entries = new Map<string, Entry>()
  /** Inputs on their way here, by digest, and what each will take decoded. */
  private readonly arriving = new Map<string, Promise<void>>()
  private arrivingBytes = 0
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
        if (--entry.holds === 0 && this.entries.get(sha256) === entry) {
          this.entries.delete(sha256)
          this.dispatchEvent(new Event('released'))
        }
      },
    }
  }

  /** An input's file, if this peer has it: another peer may fetch it from here. */
  fileOf (sha256: string): Buffer | undefined {
    return this.entries.get(sha256)?.file
  }

  /**
   * An input is on its way here (`arrival` settles once it is held, or
   * failed). A coordinator names a worker as a source the moment it has sent
   * it the file, which may be before the worker holds it.
   */
  expect (sha256: string, arrival: Promise<unknown>, rawBytes: number): void {
    const settled = arrival.then(() => {}, () => {})
    this.arriving.set(sha256, settled)
    this.arrivingBytes += rawBytes
    void settled.then(() => {
      this.arrivingBytes -= rawBytes
      if (this.arriving.get(sha256) === settled) this.arriving.delete(sha256)
    })
  }

  /** What the inputs held here, and those on their way, take decoded: a worker takes on no more than its budget. */
  get decodedBytes (): number {
    let bytes = this.arrivingBytes
    for (const entry of this.entries.values()) bytes += entry.rawBytes
    return bytes
  }

  /** An input's file, waiting for it if it is on its way here. */
  async fileWhenHere (sha256: string): Promise<Buffer | undefined> {
    await this.arriving.get(sha256)
    return this.fileOf(sha256)
  }

  /** Inputs held now. */
  get size (): number { return this.entries.size }
}
