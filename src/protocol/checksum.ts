import { crc32 } from 'node:zlib'

/**
 * The checksum of a tile's raw pixels, on the wire both ways. Noise already
 * authenticates every byte between peers; this catches bugs between compute,
 * the wire and placement, so CRC-32 (native, 3x sha256's speed here) is enough.
 */
export function tileChecksum (bytes: Uint8Array): string {
  return crc32(bytes).toString(16).padStart(8, '0')
}
