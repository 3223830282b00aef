import { allocRawUnsafe, bytesPerPixel, freeBuffer, type PixelFormat, type RawImage, type Rect } from './raw.ts'

/**
 * An image held as horizontal bands of `bandRows` rows, each its own buffer,
 * so that a band can be freed once nothing will read it again: a
 * coordinator's input shrinks as its rows of tiles are done.
 */
export class BandedImage {
  readonly width: number
  readonly height: number
  readonly format: PixelFormat
  readonly bandRows: number
  private readonly bands: Array<Buffer | undefined>

  /** Empty: rows arrive with append(), top to bottom. */
  constructor (width: number, height: number, format: PixelFormat, bandRows: number) {
    if (!Number.isInteger(bandRows) || bandRows < 1) throw new RangeError(`band rows must be a positive integer, got ${bandRows}`)
    this.width = width
    this.height = height
    this.format = { channels: format.channels, depth: format.depth }
    this.bandRows = bandRows
    this.bands = new Array<Buffer | undefined>(Math.ceil(height / bandRows)).fill(undefined)
  }

  /** Takes `image`: its pixels are copied into bands and its buffer freed. */
  static from (image: RawImage, bandRows: number): BandedImage {
    const banded = new BandedImage(image.width, image.height, image, bandRows)
    banded.append(image)
    return banded
  }

  private filledRows = 0

  /**
   * Takes the next rows of the image (a whole number of bands, or the last
   * rows): they are copied into bands and the strip's buffer is freed.
   */
  append (strip: RawImage): void {
    if (strip.width !== this.width || strip.channels !== this.format.channels || strip.depth !== this.format.depth) throw new Error('internal: a strip of another shape')
    if (this.filledRows % this.bandRows !== 0 || this.filledRows + strip.height > this.height) throw new Error(`internal: a strip of ${strip.height} rows at row ${this.filledRows}`)
    const rowBytes = this.width * bytesPerPixel(this.format)
    for (let y = 0; y < strip.height; y += this.bandRows) {
      const rows = Math.min(this.bandRows, strip.height - y)
      this.bands[(this.filledRows + y) / this.bandRows] = Buffer.from(strip.data.subarray(y * rowBytes, (y + rows) * rowBytes))
    }
    this.filledRows += strip.height
    freeBuffer(strip.data)
  }

  /** The bands a run of rows lies in. */
  bandsOf (y: number, height: number): number[] {
    const first = Math.floor(y / this.bandRows)
    const last = Math.floor((y + height - 1) / this.bandRows)
    return Array.from({ length: last - first + 1 }, (_, i) => first + i)
  }

  get bandCount (): number { return this.bands.length }

  /** Bytes still held. */
  get heldBytes (): number { return this.bands.reduce((sum, b) => sum + (b?.length ?? 0), 0) }

  /** A copy of `rect`, which must lie inside the image and in bands not yet dropped. */
  extract (rect: Rect): RawImage {
    const bpp = bytesPerPixel(this.format)
    const out = allocRawUnsafe(rect.width, rect.height, this.format)
    const rowBytes = rect.width * bpp
    for (let row = 0; row < rect.height; row++) {
      const y = rect.y + row
      const band = this.bands[Math.floor(y / this.bandRows)]
      if (band === undefined) throw new Error(`internal: row ${y} was read after its band was dropped`)
      const from = ((y % this.bandRows) * this.width + rect.x) * bpp
      band.copy(out.data, row * rowBytes, from, from + rowBytes)
    }
    return out
  }

  /** Frees a band now; reading it afterwards is a bug and throws. */
  drop (band: number): void {
    freeBuffer(this.bands[band])
    this.bands[band] = undefined
  }

  /** Frees every band. */
  dropAll (): void {
    for (let i = 0; i < this.bands.length; i++) this.drop(i)
  }
}
