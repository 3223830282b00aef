import type { Context } from 'hono'
import { oneLine } from '../common/errors.ts'

/** An error as the page shows it: the CLI's one line, never a stack. */
export function refuse (c: Context, status: 400 | 401 | 403 | 404 | 408 | 413 | 421 | 500 | 503, name: string, message: string, headers?: Record<string, string>): Response {
  return c.json({ error: name, message: oneLine(message) }, status, headers)
}
