import { readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** ../shared/fixtures beside the checkout (CI lays a copy there too). */
export const FIXTURES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/fixtures')

export function fixture (name: string): string {
  return join(FIXTURES_DIR, name)
}

export function fixtureNames (): string[] {
  return readdirSync(FIXTURES_DIR).filter(n => !n.endsWith('.md')).sort()
}
