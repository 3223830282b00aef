import { crc32, deflateSync } from 'node:zlib'
import type { Metadata } from 'sharp'
import type { Channels } from './pixels/raw.ts'

/**
 * What a photo carries besides its pixels, as the input file held it: kept
 * beside the decoded pixels and written again at encode (unless stripped).
 * EXIF has its orientation set to 1: the pixels are turned upright at decode.
 */
export interface ImageMetadata {
  exif?: Buffer
  icc?: Buffer
  xmp?: Buffer
  /** The file's pixels per inch, written with what it carries. */
  density?: number
}

const EXIF_PREFIX = Buffer.from('Exif\0\0', 'latin1')

/** The input's metadata from its header, as the output will carry it. */
export function metadataOf (meta: Metadata): ImageMetadata {
  const out: ImageMetadata = {}
  if (meta.exif !== undefined && meta.exif.length > 8) {
    const upright = uprightExif(meta.exif)
    if (upright !== undefined) out.exif = upright
  }
  // A CMYK image is converted to sRGB at decode: its CMYK profile would be wrong on the output.
  if (meta.icc !== undefined && meta.space !== 'cmyk' && ['RGB ', 'GRAY'].includes(iccSpace(meta.icc))) out.icc = meta.icc
  if (meta.xmp !== undefined && meta.xmp.length > 0) out.xmp = meta.xmp
  if (hasMetadata(out) && meta.density !== undefined && meta.density > 0) out.density = meta.density
  return out
}

export function hasMetadata (metadata: ImageMetadata | undefined): boolean {
  return metadata !== undefined && (metadata.exif !== undefined || metadata.icc !== undefined || metadata.xmp !== undefined)
}

/** The colour space an ICC profile is for ('RGB ', 'GRAY', 'CMYK', ...). */
export function iccSpace (icc: Buffer): string {
  return icc.length >= 20 ? icc.subarray(16, 20).toString('latin1') : ''
}

/**
 * The EXIF blob (TIFF structure, without the JPEG 'Exif' prefix) with its
 * orientation tag set to 1; undefined if it cannot be read.
 */
export function uprightExif (exif: Buffer): Buffer | undefined {
  const tiff = Buffer.from(exif.subarray(0, 6).equals(EXIF_PREFIX) ? exif.subarray(6) : exif)
  if (tiff.length < 8) return undefined
  const order = tiff.subarray(0, 2).toString('latin1')
  if (order !== 'II' && order !== 'MM') return undefined
  const le = order === 'II'
  const u16 = (at: number): number => le ? tiff.readUInt16LE(at) : tiff.readUInt16BE(at)
  const u32 = (at: number): number => le ? tiff.readUInt32LE(at) : tiff.readUInt32BE(at)
  if (u16(2) !== 42) return undefined
  const ifd = u32(4)
  if (ifd + 2 > tiff.length) return undefined
  const entries = u16(ifd)
  for (let i = 0; i < entries; i++) {
    const at = ifd + 2 + i * 12
    if (at + 12 > tiff.length) return undefined
    // Orientation: SHORT, one value, held in the entry itself.
    if (u16(at) === 0x0112 && u16(at + 2) === 3) {
      if (le) tiff.writeUInt16LE(1, at + 8)
      else tiff.writeUInt16BE(1, at + 8)
    }
  }
  return tiff
}

/** What of `metadata` an output of `channels` can carry: an ICC profile only where it matches grey or colour. */
export function metadataFor (metadata: ImageMetadata, channels: Channels): ImageMetadata {
  const out: ImageMetadata = { ...metadata }
  if (out.icc !== undefined && iccSpace(out.icc) !== (channels <= 2 ? 'GRAY' : 'RGB ')) delete out.icc
  return out
}

function chunk (type: string, body: Buffer): Buffer {
  const b = Buffer.alloc(12 + body.length)
  b.writeUInt32BE(body.length, 0)
  b.write(type, 4, 'latin1')
  body.copy(b, 8)
  b.writeUInt32BE(crc32(b.subarray(4, 8 + body.length)), 8 + body.length)
  return b
}

/**
 * A PNG (written by libvips from raw pixels) with `metadata` put in after its
 * header: sharp can set no EXIF or ICC blob on raw pixels, but reads them from
 * a PNG and keeps them for any output format.
 */
export function withPngMetadata (png: Buffer, metadata: ImageMetadata): Buffer {
  const afterHeader = 8 + 12 + 13
  const extra: Buffer[] = []
  if (metadata.icc !== undefined) extra.push(chunk('iCCP', Buffer.concat([Buffer.from('icc\0\0', 'latin1'), deflateSync(metadata.icc)])))
  if (metadata.exif !== undefined) extra.push(chunk('eXIf', metadata.exif))
  if (metadata.xmp !== undefined) extra.push(chunk('iTXt', Buffer.concat([Buffer.from('XML:com.adobe.xmp\0\0\0\0\0', 'latin1'), metadata.xmp])))
  return Buffer.concat([png.subarray(0, afterHeader), ...extra, png.subarray(afterHeader)])
}
