/** Edit distance (Levenshtein), for 'did you mean'. */
export function distance (a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]!
}

/** The names within two edits of `typed` (one, for a name of three letters or fewer), nearest first. */
export function nearNames (typed: string, names: readonly string[]): string[] {
  const reach = typed.length <= 3 ? 1 : 2
  return names.map(name => ({ name, d: distance(name, typed) })).filter(n => n.d <= reach).sort((a, b) => a.d - b.d).map(n => n.name)
}

/** " (did you mean 'x' or 'y'?)", or nothing. */
export function didYouMean (typed: string, names: readonly string[]): string {
  const near = nearNames(typed, names)
  return near.length > 0 ? ` (did you mean ${near.map(n => `'${n}'`).join(' or ')}?)` : ''
}
