/** A size for people: bytes below a kilobyte (an empty file is 0 B, not 1 kB), kB below a megabyte ('0.0 MB' reads as nothing), MB above, with a decimal below ten. */
export function sizeText (bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} kB`
  return `${(bytes / 1024 / 1024).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MB`
}
