export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const
export const LOG_FORMATS = ['text', 'json'] as const

/** How a peer's parts say what happens: a line, and how much it matters (info when not said). */
export type LogLevel = typeof LOG_LEVELS[number]
export type Log = (line: string, level?: LogLevel) => void

/** A peer id as logs and the dashboard show it: its last 8 characters, enough to tell a swarm's peers apart. */
export function shortId (peerId: string): string {
  return peerId.slice(-8)
}
