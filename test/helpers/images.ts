import { samples, type PixelFormat, type RawImage } from '../../src/imaging/index.ts'

export { noiseImage } from '../../sim/model.ts'

export const FORMATS: PixelFormat[] = [
  { channels: 1, depth: 8 },
  { channels: 2, depth: 8 },
  { channels: 3, depth: 8 },
  { channels: 4, depth: 8 },
  { channels: 1, depth: 16 },
  { channels: 3, depth: 16 },
  { channels: 4, depth: 16 },
]

export function sameImage (a: RawImage, b: RawImage): boolean {
  return a.width === b.width && a.height === b.height && a.channels === b.channels && a.depth === b.depth && a.data.equals(b.data)
}

/** Where two images first differ, for failure messages. */
export function firstDifference (a: RawImage, b: RawImage): string {
  if (a.width !== b.width || a.height !== b.height || a.channels !== b.channels || a.depth !== b.depth) {
    return `shape ${a.width}x${a.height}x${a.channels}@${a.depth} vs ${b.width}x${b.height}x${b.channels}@${b.depth}`
  }
  const sa = samples(a); const sb = samples(b)
  for (let i = 0; i < sa.length; i++) {
    if (sa[i] !== sb[i]) {
      const p = Math.floor(i / a.channels)
      return `pixel (${p % a.width}, ${Math.floor(p / a.width)}) channel ${i % a.channels}: ${sa[i]} vs ${sb[i]}`
    }
  }
  return 'identical'
}
