/**
 * A set of tile indices as it travels in a join's or a reply's body: a
 * bitmap, bit i (byte i >> 3, bit i & 7) for tile i.
 */
export function tileBitmap (tiles: Iterable<number>, size?: number): Uint8Array {
  const list = [...tiles]
  const bitmap = new Uint8Array(size ?? (list.length === 0 ? 0 : (Math.max(...list) >> 3) + 1))
  for (const tile of list) bitmap[tile >> 3]! |= 1 << (tile & 7)
  return bitmap
}

export function hasTile (bitmap: Uint8Array, tile: number): boolean {
  return tile >> 3 < bitmap.length && (bitmap[tile >> 3]! & (1 << (tile & 7))) !== 0
}

/** The tiles a bitmap names, in order. */
export function tilesIn (bitmap: Uint8Array): number[] {
  const tiles: number[] = []
  for (let tile = 0; tile < bitmap.length * 8; tile++) if (hasTile(bitmap, tile)) tiles.push(tile)
  return tiles
}
