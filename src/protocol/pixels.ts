import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib'
import { ProtocolError } from '../common/errors.ts'

export type PixelEncoding = 'zstd'

/** Compressed pixels must save this share of the raw bytes to be sent compressed. */
const MIN_SAVING = 0.1

/**
 * A tile's pixels for a link to another peer: zstd at its fastest level when
 * that saves a tenth or more (a photo's tiles come to about 2.5x smaller, so a
 * coordinator's one link carries less than half), raw otherwise (noise).
 * On the main thread, a few ms a tile: node's async zstd queues each 16 KB
 * chunk on the libuv pool behind the peer's sharp passes, which held a tile
 * for seconds and let its lease lapse.
 */
export function packPixels (raw: Uint8Array): { body: Uint8Array, encoding?: PixelEncoding } {
  const packed = zstdCompressSync(raw, { params: { [constants.ZSTD_c_compressionLevel]: 1 } })
  return packed.length <= raw.length * (1 - MIN_SAVING) ? { body: packed, encoding: 'zstd' } : { body: raw }
}

/**
 * The raw bytes back, which must come to exactly `bytes` (or at most, for a
 * summary, which varies): a body that inflates past that is refused, not inflated.
 */
export function unpackPixels (body: Buffer, encoding: PixelEncoding | undefined, bytes: number, exact = true): Buffer {
  if (encoding === undefined) return body
  let raw: Buffer
  try {
    raw = zstdDecompressSync(body, { maxOutputLength: Math.max(1, bytes) })
  } catch (err) {
    throw new ProtocolError(`tile pixels do not decompress to ${exact ? '' : 'at most '}${bytes} bytes: ${(err as Error).message}`)
  }
  if (exact && raw.length !== bytes) throw new ProtocolError(`tile pixels decompress to ${raw.length} bytes, expected ${bytes}`)
  return raw
}
