/**
 * Raw pixels: the one representation that travels between decode, operations,
 * tiles and encode. Interleaved, row-major, 8 or 16 bits per sample
 * (16-bit samples in host byte order, as sharp reads and writes them).
 */
export type Channels = 1 | 2 | 3 | 4
export type Depth = 8 | 16

export interface PixelFormat {
  /** 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
  channels: Channels
  depth: Depth
}

export interface RawImage extends PixelFormat {
  width: number
  height: number
  data: Buffer
}

export interface Rect {
  x: number
  y: number
  width: number
  height: number
}

export function bytesPerPixel (format: PixelFormat): number {
  return format.channels * (format.depth / 8)
}

export function rawByteLength (width: number, height: number, format: PixelFormat): number {
  return width * height * bytesPerPixel(format)
}

export function hasAlpha (format: PixelFormat): boolean {
  return format.channels === 2 || format.channels === 4
}

export function maxSample (depth: Depth): number {
  return depth === 16 ? 65535 : 255
}

export function createRaw (width: number, height: number, format: PixelFormat): RawImage {
  return { width, height, channels: format.channels, depth: format.depth, data: Buffer.alloc(rawByteLength(width, height, format)) }
}

/** Like createRaw, but the bytes are whatever memory held: only for images about to be overwritten whole. */
export function allocRawUnsafe (width: number, height: number, format: PixelFormat): RawImage {
  return { width, height, channels: format.channels, depth: format.depth, data: Buffer.allocUnsafe(rawByteLength(width, height, format)) }
}

/** Below this a buffer may share its memory with others (Node's pool), and freeing it early gains little. */
const RELEASE_MIN_BYTES = 64 * 1024

/**
 * Frees a large buffer now instead of at some later garbage collection, so
 * memory follows the work: only for buffers nobody else will read. A buffer
 * that shares its memory with one in `keep`, or with anything else, stays.
 */
export function freeBuffer (buffer: Uint8Array | undefined, keep: ReadonlyArray<Uint8Array | undefined> = []): void {
  if (buffer === undefined || buffer.byteLength < RELEASE_MIN_BYTES) return
  const memory = buffer.buffer
  if (!(memory instanceof ArrayBuffer) || memory.detached || buffer.byteOffset !== 0 || buffer.byteLength !== memory.byteLength) return
  if (keep.some(k => k?.buffer === memory)) return
  memory.transfer(0)
}

export function formatName (format: PixelFormat): string {
  const names = { 1: 'grey', 2: 'grey+alpha', 3: 'RGB', 4: 'RGBA' }
  return `${format.depth}-bit ${names[format.channels]}`
}

/** Typed view of the samples, for sharp's raw input and per-sample loops. */
export function samples (image: RawImage): Uint8Array | Uint16Array {
  const { data } = image
  if (image.depth === 8) return new Uint8Array(data.buffer, data.byteOffset, data.length)
  if (data.byteOffset % 2 !== 0) {
    // Buffers sliced from a pool may be unaligned; Uint16Array needs alignment.
    const copy = Buffer.alloc(data.length)
    data.copy(copy)
    return new Uint16Array(copy.buffer, copy.byteOffset, copy.length / 2)
  }
  return new Uint16Array(data.buffer, data.byteOffset, data.length / 2)
}

/** `rect` grown by `by` on every side, clipped to a width x height image. */
export function growRect (rect: Rect, by: number, width: number, height: number): Rect {
  const x0 = Math.max(0, rect.x - by)
  const y0 = Math.max(0, rect.y - by)
  const x1 = Math.min(width, rect.x + rect.width + by)
  const y1 = Math.min(height, rect.y + rect.height + by)
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 }
}

/** A typed array's bytes, without a copy. Words are in the host's order, like 16-bit samples. */
export function bytesOf (array: Uint32Array | Uint16Array): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength)
}

/** Bytes as u32 words (a copy: received bytes need not be aligned). */
export function u32Words (bytes: Uint8Array): Uint32Array {
  const copy = new Uint8Array(bytes)
  return new Uint32Array(copy.buffer, 0, copy.byteLength >> 2)
}

/** Bytes as u16 words (a copy, as u32Words). */
export function u16Words (bytes: Uint8Array): Uint16Array {
  const copy = new Uint8Array(bytes)
  return new Uint16Array(copy.buffer, 0, copy.byteLength >> 1)
}

/** Copies a rectangle out of an image. The rectangle must lie inside it. */
export function extract (image: RawImage, rect: Rect): RawImage {
  if (rect.x === 0 && rect.y === 0 && rect.width === image.width && rect.height === image.height) return image
  const bpp = bytesPerPixel(image)
  const out = allocRawUnsafe(rect.width, rect.height, image)
  const rowBytes = rect.width * bpp
  for (let row = 0; row < rect.height; row++) {
    const from = ((rect.y + row) * image.width + rect.x) * bpp
    image.data.copy(out.data, row * rowBytes, from, from + rowBytes)
  }
  return out
}

/** Writes `tile` into `target` at (x, y). The tile must fit. */
export function blit (target: RawImage, tile: RawImage, x: number, y: number): void {
  const bpp = bytesPerPixel(target)
  const rowBytes = tile.width * bpp
  for (let row = 0; row < tile.height; row++) {
    tile.data.copy(target.data, ((y + row) * target.width + x) * bpp, row * rowBytes, (row + 1) * rowBytes)
  }
}

/** Pixels to add on each side of an image. */
export interface Sides {
  top: number
  right: number
  bottom: number
  left: number
}

/** Grows an image by `pad` pixels on each side, repeating the edge pixels. */
export function padReplicate (image: RawImage, pad: Sides): RawImage {
  const { top, right, bottom, left } = pad
  if (top === 0 && right === 0 && bottom === 0 && left === 0) return image
  const bpp = bytesPerPixel(image)
  const out = allocRawUnsafe(image.width + left + right, image.height + top + bottom, image)
  const inRow = image.width * bpp
  const outRow = out.width * bpp
  for (let row = 0; row < out.height; row++) {
    const srcRow = Math.min(image.height - 1, Math.max(0, row - top))
    const src = srcRow * inRow
    const dst = row * outRow
    image.data.copy(out.data, dst + left * bpp, src, src + inRow)
    for (let i = 0; i < left; i++) image.data.copy(out.data, dst + i * bpp, src, src + bpp)
    for (let i = 0; i < right; i++) image.data.copy(out.data, dst + (left + image.width + i) * bpp, src + inRow - bpp, src + inRow)
  }
  return out
}

/** Splits the alpha channel off: [colour, alpha] (alpha undefined when none). */
export function splitAlpha (image: RawImage): [RawImage, RawImage | undefined] {
  if (!hasAlpha(image)) return [image, undefined]
  const n = image.channels
  const colour = allocRawUnsafe(image.width, image.height, { channels: (n - 1) as Channels, depth: image.depth })
  const alpha = allocRawUnsafe(image.width, image.height, { channels: 1, depth: image.depth })
  const src = samples(image)
  const c = samples(colour)
  const a = samples(alpha)
  // One sample at a time: a Buffer.copy per pixel costs more than the copy itself.
  for (let p = 0, i = 0, j = 0; p < a.length; p++) {
    for (let k = 1; k < n; k++) c[j++] = src[i++]!
    a[p] = src[i++]!
  }
  return [withSamples(colour, c), withSamples(alpha, a)]
}

export function joinAlpha (colour: RawImage, alpha: RawImage | undefined): RawImage {
  if (alpha === undefined) return colour
  const n = colour.channels + 1
  const out = allocRawUnsafe(colour.width, colour.height, { channels: n as Channels, depth: colour.depth })
  const c = samples(colour)
  const a = samples(alpha)
  const dst = samples(out)
  for (let p = 0, i = 0, j = 0; p < a.length; p++) {
    for (let k = 1; k < n; k++) dst[i++] = c[j++]!
    dst[i++] = a[p]!
  }
  return withSamples(out, dst)
}

/** A RawImage whose data is `typed` (which may be a copy made for alignment). */
export function withSamples (image: RawImage, typed: Uint8Array | Uint16Array): RawImage {
  return { ...image, data: Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength) }
}
