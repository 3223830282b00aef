// What a chosen file is, read from its first bytes in the browser: a file the peer would refuse is refused here, before its upload.

/** ISO-BMFF brands a peer decodes: AVIF and HEIF (HEIC) still images and sequences. */
const HEIF_BRANDS = new Set(['avif', 'avis', 'heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'mif1', 'msf1'])
const TAKES = 'JPEG, PNG, WebP, TIFF, GIF, AVIF or HEIF'

const ascii = (b, from, to) => String.fromCharCode(...b.subarray(from, to))
const starts = (b, bytes) => bytes.every((x, i) => b[i] === x)

/** The image type the header says, or undefined. */
export function typeOf (b) {
  if (starts(b, [0xff, 0xd8, 0xff])) return 'JPEG'
  if (starts(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'PNG'
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'WebP'
  if (starts(b, [0x49, 0x49, 0x2a, 0x00]) || starts(b, [0x4d, 0x4d, 0x00, 0x2a]) || starts(b, [0x49, 0x49, 0x2b, 0x00]) || starts(b, [0x4d, 0x4d, 0x00, 0x2b])) return 'TIFF'
  if (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a') return 'GIF'
  if (b.length >= 16 && ascii(b, 4, 8) === 'ftyp') {
    // The ftyp box: its major brand, then its compatible brands, up to its size.
    const size = Math.min(b.length, new DataView(b.buffer, b.byteOffset).getUint32(0))
    const brands = [ascii(b, 8, 12)]
    for (let at = 16; at + 4 <= size; at += 4) brands.push(ascii(b, at, at + 4))
    if (brands.some(x => x === 'avif' || x === 'avis')) return 'AVIF'
    if (brands.some(x => HEIF_BRANDS.has(x))) return 'HEIF'
  }
  return undefined
}

/** Why a file is not taken, in one line naming it; undefined when it is an image the peer may take. */
export async function refusal (file) {
  if (file.size === 0) return `${file.name}: the file is empty (0 bytes)`
  const b = new Uint8Array(await file.slice(0, 256).arrayBuffer())
  if (typeOf(b) !== undefined) return undefined
  const text = new TextDecoder('utf-8', { fatal: false }).decode(b).trimStart().toLowerCase()
  if (text.startsWith('<svg') || (text.startsWith('<') && text.includes('<svg'))) return `${file.name}: an SVG drawing, not a raster image (tileswarm takes ${TAKES})`
  if (b.length >= 12 && ascii(b, 4, 8) === 'ftyp') return `${file.name}: an ISO media file of brand '${ascii(b, 8, 12)}', not an AVIF or HEIF image`
  return `${file.name}: not an image tileswarm takes (${TAKES}), by its first bytes`
}

/** The files split: those taken, and a line for each refused. */
export async function sortFiles (files) {
  const taken = []
  const refused = []
  for (const f of files) {
    const why = await refusal(f)
    if (why === undefined) taken.push(f)
    else refused.push(why)
  }
  return { taken, refused }
}
