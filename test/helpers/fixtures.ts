import { readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Real images kept in the repository (origins and licences in its SOURCES.md). */
export const FIXTURES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../fixtures')

export function fixture (name: string): string {
  return join(FIXTURES_DIR, name)
}

export function fixtureNames (): string[] {
  return readdirSync(FIXTURES_DIR).filter(n => !n.endsWith('.md')).sort()
}
