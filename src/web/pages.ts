import { readFile } from 'node:fs/promises'
import type { Context, Hono } from 'hono'
import { refuse } from './refuse.ts'

/** The page's own files, by name, with their types: nothing else is ever served from disk. */
const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'common.js': 'text/javascript; charset=utf-8',
  'files.js': 'text/javascript; charset=utf-8',
  'watch.js': 'text/javascript; charset=utf-8',
  'tile-map.js': 'text/javascript; charset=utf-8',
  'graphs.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
}

/** The page's files, read once at start. */
export class Pages {
  private readonly files: Map<string, Buffer>

  private constructor (files: Map<string, Buffer>) {
    this.files = files
  }

  static async load (): Promise<Pages> {
    const files = new Map<string, Buffer>()
    for (const name of Object.keys(ASSETS)) files.set(name, await readFile(new URL(`../web/assets/${name}`, import.meta.url)))
    return new Pages(files)
  }

  /** `/assets/:name`: scripts and styles, open to all (the pages themselves are behind the token). */
  serveAssets (app: Hono): void {
    app.get('/assets/:name', c => {
      const name = c.req.param('name')
      const body = ASSETS[name] !== undefined && !name.endsWith('.html') ? this.files.get(name) : undefined
      if (body === undefined) return refuse(c, 404, 'NotFound', 'no such file')
      return c.body(new Uint8Array(body), 200, { 'content-type': ASSETS[name]!, 'cache-control': 'no-cache' })
    })
  }

  page (name: string): (c: Context) => Response {
    return c => c.body(new Uint8Array(this.files.get(name)!), 200, { 'content-type': ASSETS[name]!, 'cache-control': 'no-cache' })
  }
}
