import { crc32 } from 'node:zlib'
import { createHash } from 'node:crypto'

/**
 * The checksum of a tile's raw pixels, on the wire both ways. Noise already
 * authenticates every byte between peers; this catches bugs between compute,
 * the wire and placement, so CRC-32 (native, 3x sha256's speed here) is enough.
 */
export function tileChecksum (bytes: Uint8Array): string {
  return crc32(bytes).toString(16).padStart(8, '0')
}

/**
 * What a later phase's tile was computed with: a digest of its contexts (the
 * reduced summaries of the phases before), by step. A result kept from an
 * earlier coordinator is taken only where the new one reduced the same.
 */
export function contextDigest (contexts: Iterable<readonly [number, Uint8Array]>): string {
  const hash = createHash('sha256')
  for (const [step, data] of [...contexts].sort(([a], [b]) => a - b)) {
    const head = Buffer.alloc(8)
    head.writeUInt32BE(step, 0)
    head.writeUInt32BE(data.length, 4)
    hash.update(head).update(data)
  }
  return hash.digest('hex').slice(0, 32)
}
