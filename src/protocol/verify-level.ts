/**
 * How much of a job is computed twice, as the client asks for it and hears of
 * it: the wire's words for verification (the coordinator's records and
 * shares are job/verify.ts).
 */

/**
 * How much of a job's work is computed twice: `off`; a share (the floor of
 * the adaptive share, 0 to 1); or `all`. The coordinator's own worker is
 * never checked: the coordinator encodes the output, so it is trusted anyway.
 */
export type VerifyLevel = 'off' | 'all' | number

/** The default floor: a peer with a long clean record has this share of its tiles checked. */
export const DEFAULT_VERIFY_FLOOR = 0.02

/** `--verify`'s value (or the page's `verify` field, named by `param`): a share, `all` or `off`. */
export function parseVerifyLevel (text: string, options: { param?: string } = {}): VerifyLevel {
  if (text === 'off' || text === 'all') return text
  const share = Number(text)
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(text) || share > 1) throw new RangeError(`${options.param ?? '--verify'} takes a share of tiles from 0 to 1, 'all' or 'off', not '${text}'`)
  return share
}

export function verifyText (level: VerifyLevel): string {
  return level === 'off' ? 'off' : level === 'all' ? 'every tile twice' : `spot checks (floor ${(level * 100).toFixed(level * 100 < 1 ? 1 : 0)}%)`
}

/** What the client hears of verification: tiles whose result a second computation confirmed, disagreements, and peers excluded (with their wrong tiles). */
export interface VerifyFigures {
  checked: number
  disagreements: number
  /** Computations past one a tile: checks, tie-breaks, and a liar's tiles redone. */
  extra: number
  /** Tiles whose placed pixels were replaced by the settled result. */
  replaced: number
  /** Checks given up: no peer that had not computed the tile took it (none was left, or none could take the job); the tile is taken on its word. */
  skipped: number
  excluded: Record<string, number>
}
