import { sharpLib } from './pixels/sharp-lib.ts'
import type { Metadata, Sharp } from 'sharp'
import { InvalidImageError, LimitExceededError, oneLine } from '../common/errors.ts'
import { createRaw, joinAlpha, samples, splitAlpha, withSamples, type Channels, type Depth, type PixelFormat, type RawImage } from './pixels/raw.ts'
import { greyToRgb } from './pixels/sharp-pass.ts'
import { DEFAULT_MAX_PIXELS, DEFAULT_QUALITY } from '../common/defaults.ts'
import { OUTPUT_FORMATS } from '../protocol/constants.ts'
import type { Step } from './pipeline.ts'
import { hasMetadata, metadataFor, metadataOf, withPngMetadata, type ImageMetadata } from './metadata.ts'

export const INPUT_FORMATS = ['jpeg', 'png', 'webp', 'tiff', 'avif', 'heif', 'gif'] as const
export type OutputFormat = typeof OUTPUT_FORMATS[number]

export interface DecodeOptions {
  maxPixels?: number
  /** Drop the input's EXIF, ICC profile and XMP; its pixels are converted to sRGB by its profile, as sharp does. */
  strip?: boolean
}

export interface Decoded {
  image: RawImage
  /** The container format, as sharp names it. */
  format: string
  /** Things the user should know: first frame only, orientation applied, CMYK converted. */
  notes: string[]
  /** What the output keeps of the input's metadata (nothing when stripped). */
  metadata: ImageMetadata
}

function decodeError (err: unknown): InvalidImageError {
  const msg = oneLine(err instanceof Error ? err.message : String(err))
  // libvips keeps its last error in one buffer; under concurrent work it can come back empty.
  if (/^unknown error$/i.test(msg)) return new InvalidImageError('image is corrupt or truncated (the decoder gave no detail)')
  if (/unsupported image format/i.test(msg)) return new InvalidImageError(`not a supported image (${INPUT_FORMATS.join(', ')})`)
  if (/corrupt header/i.test(msg)) return new InvalidImageError(`image header is corrupt: ${msg.replace(/^Input (buffer|file) has corrupt header: /i, '')}`)
  if (/premature end|truncated|unexpected end|not enough data|short read|read error/i.test(msg)) return new InvalidImageError(`image is truncated: ${msg}`)
  return new InvalidImageError(`image is corrupt: ${msg}`)
}

interface DecodePlan {
  format: string
  notes: string[]
  /** As displayed: after the EXIF orientation. */
  width: number
  height: number
  orientation: number
  readChannels: Channels
  space: 'grey16' | 'b-w' | 'rgb16' | 'srgb'
  wide: boolean
  depth: Depth
  greyAlpha: boolean
  maxPixels: number
  /**
   * 8-bit sRGB or grey, no alpha, upright, one frame, no ICC profile, no metadata kept (a file's EXIF
   * written by libvips from it has its density, from raw pixels 72 dpi): one libvips pipeline reads it as decodeImage does.
   */
  plain: boolean
  metadata: ImageMetadata
}

/**
 * Reads the header and plans the decode. Dimensions are checked against the
 * limit before a pixel is decoded, so a decompression bomb costs nothing.
 */
async function planDecode (bytes: Uint8Array, options: DecodeOptions): Promise<DecodePlan> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS
  if (bytes.length === 0) throw new InvalidImageError('image is empty (0 bytes)')
  let meta: Metadata
  try {
    // limitInputPixels is off here only because we check the header's numbers ourselves, with a clearer message.
    meta = await sharpLib()(bytes, { limitInputPixels: false, failOn: 'error' }).metadata()
  } catch (err) {
    throw decodeError(err)
  }
  const format = meta.format ?? 'unknown'
  if (!(INPUT_FORMATS as readonly string[]).includes(format)) {
    throw new InvalidImageError(`${format} input is not supported; use ${INPUT_FORMATS.join(', ')}`)
  }
  const width = meta.width ?? 0
  const height = meta.height ?? 0
  if (width < 1 || height < 1) throw new InvalidImageError(`image has no pixels (${width}x${height})`)
  if (width * height > maxPixels) {
    throw new LimitExceededError(`image is ${width}x${height} = ${(width * height / 1e6).toFixed(1)} MP, over the limit of ${(maxPixels / 1e6).toFixed(1)} MP (--max-pixels)`)
  }
  const notes: string[] = []
  const pages = meta.pages ?? 1
  if (pages > 1) notes.push(`${format} has ${pages} frames: only the first is processed`)
  const orientation = meta.orientation ?? 1
  if (orientation > 1) notes.push(`EXIF orientation ${orientation} applied`)
  if (meta.space === 'cmyk') notes.push('CMYK converted to sRGB')

  const wide: boolean = meta.depth === 'ushort' || meta.depth === 'short' || meta.depth === 'uint' || meta.depth === 'float' || meta.depth === 'double'
  if (wide && meta.depth !== 'ushort') notes.push(`${meta.depth} samples converted to 16-bit`)
  const grey = meta.space === 'b-w' || meta.space === 'grey16'
  const alpha = meta.hasAlpha === true
  // sharp drops alpha from raw grey output, so grey+alpha is read as RGBA and reduced.
  const readChannels: Channels = grey && !alpha ? 1 : alpha ? 4 : 3
  const space = readChannels === 1 ? (wide ? 'grey16' : 'b-w') : (wide ? 'rgb16' : 'srgb')
  const turned = orientation >= 5
  const metadata = options.strip === true ? {} : metadataOf(meta)
  return { metadata, format, notes, width: turned ? height : width, height: turned ? width : height, orientation, readChannels, space, wide, depth: wide ? 16 : 8, greyAlpha: grey && alpha, maxPixels, plain: !wide && !alpha && orientation <= 1 && pages === 1 && meta.hasProfile !== true && (meta.space === 'srgb' || meta.space === 'b-w') && metadata.icc === undefined }
}

/** An input file as every path reads it: first frame, upright, strict about errors. */
function openInput (bytes: Uint8Array, maxPixels: number): Sharp {
  return sharpLib()(bytes, { limitInputPixels: maxPixels, failOn: 'error', autoOrient: true, pages: 1 })
}

/**
 * The decode's pixels: in the file's own colour space where its profile is
 * kept (as vips does: the output carries the profile, and shows as before),
 * else converted to sRGB by it (as sharp does when it strips).
 */
function openPixels (bytes: Uint8Array, plan: DecodePlan): Sharp {
  const input = openInput(bytes, plan.maxPixels)
  return plan.metadata.icc !== undefined ? input.keepIccProfile() : input
}

async function decodeWith (bytes: Uint8Array, plan: DecodePlan): Promise<RawImage> {
  let image: RawImage
  try {
    const { data, info } = await openPixels(bytes, plan)
      .toColourspace(plan.space)
      .raw({ depth: plan.wide ? 'ushort' : 'uchar' })
      .toBuffer({ resolveWithObject: true })
    if (info.channels !== plan.readChannels) throw new Error(`decoded ${info.channels} channels, expected ${plan.readChannels}`)
    image = { width: info.width, height: info.height, channels: plan.readChannels, depth: plan.depth, data }
  } catch (err) {
    throw decodeError(err)
  }
  return plan.greyAlpha ? rgbaToGreyAlpha(image) : image
}

/** Decodes once to raw pixels. */
export async function decodeImage (bytes: Uint8Array, options: DecodeOptions = {}): Promise<Decoded> {
  const plan = await planDecode(bytes, options)
  return { image: await decodeWith(bytes, plan), format: plan.format, notes: plan.notes, metadata: plan.metadata }
}

/** What the header says, before a pixel is decoded: enough to plan tiles. */
export interface ImageHeader {
  /** As displayed: after the EXIF orientation. */
  width: number
  height: number
  /** The raw pixel format a decode gives. */
  format: PixelFormat
  /** The container format, as sharp names it. */
  container: string
  notes: string[]
  /** 8-bit sRGB or grey, no alpha, upright, one frame, no ICC profile, no metadata kept (see wholeImagePipeline). */
  plain: boolean
  /** What the output keeps of the input's metadata (nothing when stripped). */
  metadata: ImageMetadata
}

/** Reads the header only: a coordinator plans from it and leaves decoding to the workers. */
export async function readImageHeader (bytes: Uint8Array, options: DecodeOptions = {}): Promise<ImageHeader> {
  const plan = await planDecode(bytes, options)
  return { width: plan.width, height: plan.height, format: { channels: plan.greyAlpha ? 2 : plan.readChannels, depth: plan.depth }, container: plan.format, notes: plan.notes, plain: plan.plain, metadata: plan.metadata }
}

function rgbaToGreyAlpha (image: RawImage): RawImage {
  const [rgb, alpha] = splitAlpha(image)
  const grey = createRaw(rgb.width, rgb.height, { channels: 1, depth: rgb.depth })
  const src = samples(rgb)
  const dst = samples(grey)
  for (let i = 0; i < dst.length; i++) dst[i] = src[3 * i]!
  return joinAlpha(withSamples(grey, dst), alpha)
}

function greyAlphaToRgba (image: RawImage): RawImage {
  const [grey, alpha] = splitAlpha(image)
  return joinAlpha(greyToRgb(grey), alpha)
}

export function formatFromPath (path: string): OutputFormat | undefined {
  const ext = path.toLowerCase().match(/\.([a-z0-9]+)$/)?.[1]
  switch (ext) {
    case 'jpg': case 'jpeg': return 'jpeg'
    case 'png': return 'png'
    case 'webp': return 'webp'
    case 'tif': case 'tiff': return 'tiff'
    case 'avif': return 'avif'
    default: return undefined
  }
}

export interface EncodeOptions {
  format: OutputFormat
  /** 1-100 for jpeg, webp, avif (and tiff's jpeg-free deflate ignores it). */
  quality?: number
  /** The input's metadata, written as far as the format carries it (tiff: no EXIF). */
  metadata?: ImageMetadata
}

/**
 * Optimised Huffman tables need every DCT coefficient in memory at once: two
 * bytes per sample, 650 MB at 108 MP, twice the raw image. Past 16 MP we take
 * a file about 8% larger (and a 2x faster encode) instead.
 */
export const OPTIMISE_CODING_MAX_PIXELS = 16_000_000

/** What a format can hold: 16-bit in png and tiff; alpha everywhere but jpeg. */
export function canHold (format: OutputFormat): { depth16: boolean, alpha: boolean } {
  return { depth16: format === 'png' || format === 'tiff', alpha: format !== 'jpeg' }
}

/** The encoder, as every path sets it: the same options give the same bytes for the same pixels. */
function encodeWith (pipeline: Sharp, options: EncodeOptions, pixels: number): Promise<Buffer> {
  const quality = options.quality ?? DEFAULT_QUALITY
  switch (options.format) {
    case 'jpeg': return pipeline.jpeg({ quality, mozjpeg: false, optimiseCoding: pixels <= OPTIMISE_CODING_MAX_PIXELS }).toBuffer()
    case 'png': return pipeline.png({ compressionLevel: 6 }).toBuffer()
    case 'webp': return pipeline.webp({ quality }).toBuffer()
    case 'tiff': return pipeline.tiff({ compression: 'deflate' }).toBuffer()
    case 'avif': return pipeline.avif({ quality }).toBuffer()
  }
}

/**
 * Decode, operation and encode in one libvips pipeline, streamed together
 * as sharp's own: what a job does when nobody shares its work. Only for a
 * plain image (see ImageHeader.plain) and one step with a native form, where
 * it gives the very bytes decodeImage, runPipeline and encodeImage give;
 * undefined otherwise. Tests hold it to that.
 */
export function wholeImagePipeline (bytes: Uint8Array, header: ImageHeader, steps: readonly Step[], options: EncodeOptions & { maxPixels: number }): Promise<Buffer> | undefined {
  const step = steps.length === 1 ? steps[0]! : undefined
  const native = step?.operation.native
  // A PNG written from a file keeps the file's density (pHYs), one written from raw pixels has none.
  if (!header.plain || step === undefined || native === undefined || options.format === 'png') return undefined
  // libvips' TIFF writer says a kept density otherwise than when it read the file whole.
  if (options.format === 'tiff' && hasMetadata(header.metadata)) return undefined
  const grey = header.format.channels === 1
  if (grey && step.operation.colourOut(1) !== 1) return undefined
  let pipeline = native(openInput(bytes, options.maxPixels), step.params).toColourspace(grey ? 'b-w' : 'srgb')
  // Upright already (plain): the file's EXIF and XMP as they are, as the raw path writes them.
  if (header.metadata.exif !== undefined) pipeline = pipeline.keepExif()
  if (header.metadata.xmp !== undefined) pipeline = pipeline.keepXmp()
  return encodeWith(pipeline, options, header.width * header.height).catch((err: unknown) => { throw decodeError(err) })
}

/** Encodes once, at the end. Alpha is flattened onto white for JPEG. */
export async function encodeImage (image: RawImage, options: EncodeOptions): Promise<Buffer> {
  const { format } = options
  const quality = options.quality ?? DEFAULT_QUALITY
  const hold = canHold(format)
  let source = image
  // libvips' tiff writer loses the alpha of 2-channel grey: write it as RGBA.
  if (source.channels === 2 && format !== 'png') source = greyAlphaToRgba(source)
  const grey = source.channels <= 2
  const wideIn = source.depth === 16
  let pipeline = await openRaw(source, options.metadata)
  const wideOut = wideIn && hold.depth16
  if (!hold.alpha && (source.channels === 2 || source.channels === 4)) pipeline = pipeline.flatten({ background: '#ffffff' })
  pipeline = pipeline.toColourspace(grey ? (wideOut ? 'grey16' : 'b-w') : (wideOut ? 'rgb16' : 'srgb'))
  return await encodeWith(pipeline, { format, quality }, source.width * source.height)
}

/**
 * Raw pixels as sharp's input; with metadata, through a PNG that carries it
 * (sharp sets no EXIF or ICC blob on raw pixels), kept as it is at encode.
 */
async function openRaw (image: RawImage, metadata: ImageMetadata | undefined): Promise<Sharp> {
  const raw = sharpLib()(samples(image), { raw: { width: image.width, height: image.height, channels: image.channels } })
  const kept = metadata === undefined ? {} : metadataFor(metadata, image.channels)
  if (!hasMetadata(kept)) return raw
  // Its own colourspace said, or sharp would write the PNG at 8 bits.
  const space = image.channels <= 2 ? (image.depth === 16 ? 'grey16' : 'b-w') : (image.depth === 16 ? 'rgb16' : 'srgb')
  const png = await raw.toColourspace(space).png({ compressionLevel: 0, adaptiveFiltering: false }).toBuffer()
  const opened = sharpLib()(withPngMetadata(png, kept), { limitInputPixels: false }).keepMetadata()
  // The file's density, as libvips writes it into the EXIF of a file it read whole (a PNG from raw pixels has 72 dpi).
  return kept.density !== undefined ? opened.withDensity(kept.density) : opened
}
