import { parseVerifyLevel, type VerifyLevel } from '../job/verify.ts'
import { createHash, timingSafeEqual } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import { serve, type ServerType } from '@hono/node-server'
import { Hono, type Context } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { getCookie, setCookie } from 'hono/cookie'
import { secureHeaders } from 'hono/secure-headers'
import { streamSSE } from 'hono/streaming'
import type { Libp2p } from 'libp2p'
import { InvalidParameterError, LimitExceededError, NetworkError, PeerBusyError, TileswarmError, oneLine } from '../common/errors.ts'
import { OPERATIONS, OUTPUT_FORMATS, type OutputFormat } from '../imaging/index.ts'
import type { Log } from '../common/log.ts'
import { createClientNode } from '../net/node.ts'
import { isLoopback } from '../net/address.ts'
import type { SwarmPeer } from '../swarm/peer.ts'
import { describeJob, WebJobs, type Sequenced, type Upload } from './jobs.ts'
import { DEFAULT_QUALITY } from '../common/defaults.ts'

export interface WebServerOptions {
  /** host:port; port 0 picks a free one. */
  listen: string
  /** Required to submit and to see the dashboard when the server is reachable from other machines. */
  token?: string
  peer: SwarmPeer
  maxUploadBytes: number
  maxPixels: number
  /** The web page's jobs go to the swarm from a client node of their own: it needs the swarm's key, and a place on --allow-submit. */
  swarmKey?: Uint8Array
  allowSubmit?: Set<string>
  /** Whether the page may submit jobs (default yes): a peer that takes jobs only from --allow-submit peers lets the page in only behind a token of the operator's own. */
  canSubmit?: boolean
  log: Log
}

export interface WebServer {
  /** Where the page is: http://host:port/ */
  url: string
  /** Whether requests must carry the token. */
  tokenRequired: boolean
  close: () => Promise<void>
}

/** Per port: cookies ignore ports, and peers on one host have tokens of their own. */
const cookieFor = (port: number): string => `tileswarm_token_${port}`
/** Uploads read at once; files in one upload (a bigger folder goes by the CLI). */
const MAX_UPLOADS = 4
const MAX_FILES = 10_000

const hostOf = (origin: string): string | undefined => { try { return new URL(origin).host } catch { return undefined } }

/** A count of permits that says no at once rather than queueing. */
function semaphoreCount (permits: number): { tryAcquire: () => boolean, release: () => void } {
  let free = permits
  return { tryAcquire: () => free > 0 && free-- > 0, release: () => { free++ } }
}
const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'common.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
}

/** `--http`: host:port, or off. */
export function parseHttpAddress (text: string): { host: string, port: number } | undefined {
  if (text === 'off') return undefined
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text)
  const port = m !== null ? Number(m[2]) : NaN
  if (m === null || port > 65535) throw new InvalidParameterError(`Expected host:port (like 127.0.0.1:8080, or 0.0.0.0:8080 for other machines) or off for --http but received '${text}'`)
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port }
}

/** A token for the web page that every peer of a private swarm can work out from its key, so operators need not hand one out. */
export function tokenFromSwarmKey (key: Uint8Array): string {
  return createHash('sha256').update('tileswarm http token\n').update(key).digest('hex').slice(0, 32)
}

/** A token anyone could guess is no token. */
export const MIN_TOKEN_CHARS = 16

export function checkToken (token: string): void {
  if (token.length < MIN_TOKEN_CHARS || /^change-?me/i.test(token)) throw new InvalidParameterError(`--http-token must be at least ${MIN_TOKEN_CHARS} characters and not a placeholder (try: openssl rand -hex 16)`)
}

function sameSecret (given: string | undefined, token: string): boolean {
  if (given === undefined || token === '') return false
  const a = Buffer.from(given)
  const b = Buffer.from(token)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** An error as the page shows it: the CLI's one line, never a stack. */
function refuse (c: Context, status: 400 | 401 | 403 | 404 | 413 | 421 | 500 | 503, name: string, message: string): Response {
  return c.json({ error: name, message: oneLine(message) }, status)
}

/**
 * The peer's HTTP face: the page (upload, choose operations, watch the tile
 * map fill in, download), the dashboard, /metrics, /healthz, and the JSON
 * API they use. Only its own assets are served, each by name from a fixed
 * list; off loopback, everything but /healthz and those assets needs the token.
 */
export async function startWebServer (options: WebServerOptions): Promise<WebServer> {
  const { peer, log } = options
  const address = parseHttpAddress(options.listen)
  if (address === undefined) throw new InvalidParameterError('the web server is off (--http off)')
  const tokenRequired = !isLoopback(address.host)
  if (tokenRequired && options.token === undefined) {
    throw new InvalidParameterError(`--http ${options.listen} is reachable from other machines: give --http-token <secret> (or --swarm-key, from which a token is derived), or bind to 127.0.0.1`)
  }
  const token = options.token
  if (token !== undefined) checkToken(token)
  const canSubmit = options.canSubmit ?? true
  // Web uploads at once (each holds its whole upload in memory while it is read and checked), and page jobs running.
  const uploads = semaphoreCount(MAX_UPLOADS)
  const assets = new Map<string, Buffer>()
  for (const name of Object.keys(ASSETS)) assets.set(name, await readFile(new URL(`../web/assets/${name}`, import.meta.url)))

  let client: Promise<Libp2p> | undefined
  const clientNode = async (): Promise<Libp2p> => {
    client ??= createClientNode({ swarmKey: options.swarmKey }).then(node => {
      // The page's uploads are let in by the HTTP token, not by peer id (and only where the page may submit).
      if (canSubmit) options.allowSubmit?.add(node.peerId.toString())
      return node
    })
    return await client
  }
  // The page's jobs go in at this peer, which coordinates them, as for a submit sent to it.
  const jobs = new WebJobs({ entry: () => peer.localAddrs(), client: clientNode, log, maxPixels: options.maxPixels })
  peer.metrics.addProcessMetrics()

  const app = new Hono()
  app.use('*', secureHeaders({
    contentSecurityPolicy: { defaultSrc: ["'none'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'blob:'], connectSrc: ["'self'"], formAction: ["'self'"], frameAncestors: ["'none'"], baseUri: ["'none'"] },
    referrerPolicy: 'no-referrer',
    // Plain HTTP: a browser ignores HSTS there, and a peer cannot promise TLS on that name.
    strictTransportSecurity: false,
  }))
  // A name that resolves to loopback is not enough (DNS rebinding): the Host must be ours.
  let port = address.port
  app.use('*', async (c, next) => {
    const host = c.req.header('host') ?? ''
    // Loopback by any loopback name, on any port (an SSH tunnel's or a forward's too): never by another name.
    if (!tokenRequired && !/^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(host) && host !== `${address.host}:${port}`) {
      return refuse(c, 421, 'MisdirectedRequest', `this server answers to loopback names only (${address.host}:${port})`)
    }
    // Same-origin only: a page elsewhere cannot make the browser submit here.
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const site = c.req.header('sec-fetch-site')
      const origin = c.req.header('origin')
      if ((site !== undefined && site !== 'same-origin' && site !== 'none') || (origin !== undefined && hostOf(origin) !== host)) {
        return refuse(c, 403, 'CrossOrigin', 'requests from other sites are refused')
      }
    }
    await next()
  })
  // Browsers ask for it unbidden; there is none.
  app.get('/favicon.ico', c => c.body(null, 204))
  app.get('/healthz', c => c.json({ status: 'ok', peerId: peer.peerId, peers: peer.gossip.swarmPeers(), jobs: peer.submissions.activeJobs }))
  app.get('/assets/:name', c => {
    const name = c.req.param('name')
    const body = ASSETS[name] !== undefined && !name.endsWith('.html') ? assets.get(name) : undefined
    if (body === undefined) return refuse(c, 404, 'NotFound', 'no such file')
    return c.body(new Uint8Array(body), 200, { 'content-type': ASSETS[name]!, 'cache-control': 'no-cache' })
  })
  // The token, once, in the address the peer printed; then a cookie the page's requests carry.
  app.use('*', async (c, next) => {
    if (token === undefined) return await next()
    const given = c.req.query('token')
    if (given !== undefined && c.req.method === 'GET' && sameSecret(given, token)) {
      setCookie(c, cookieFor(port), token, { httpOnly: true, sameSite: 'Strict', path: '/' })
      return c.redirect(c.req.path, 303)
    }
    const bearer = c.req.header('authorization')?.replace(/^Bearer\s+/i, '')
    if (sameSecret(getCookie(c, cookieFor(port)), token) || sameSecret(bearer, token)) return await next()
    return refuse(c, 401, 'Unauthorized', 'this peer\'s web server needs its token: open the address the peer printed (…/?token=…), or send Authorization: Bearer <token>')
  })
  const page = (name: string) => (c: Context): Response => c.body(new Uint8Array(assets.get(name)!), 200, { 'content-type': ASSETS[name]!, 'cache-control': 'no-cache' })
  app.get('/', page('index.html'))
  app.get('/dashboard', page('dashboard.html'))
  app.get('/metrics', async c => c.body(await peer.metrics.registry.metrics(), 200, { 'content-type': peer.metrics.registry.contentType }))
  app.get('/api/status', async c => c.json(await peer.detailedStatus()))
  app.get('/api/ops', c => c.json({
    formats: OUTPUT_FORMATS,
    quality: DEFAULT_QUALITY,
    canSubmit,
    maxUploadBytes: options.maxUploadBytes,
    operations: OPERATIONS.map(op => ({ name: op.name, family: op.family, summary: op.summary, example: op.example, params: op.params })),
  }))
  app.get('/api/jobs', c => c.json(jobs.list().map(describeJob)))
  app.post('/api/jobs', async (c, next) => {
    if (!canSubmit) return refuse(c, 403, 'SubmitRefusedError', 'this peer takes jobs only from the peers in --allow-submit; its operator lets the web page submit by giving --http-token')
    // Refused before the body is read: a full peer says so at once.
    if (!uploads.tryAcquire()) return refuse(c, 503, 'PeerBusyError', `this peer's web page is taking ${MAX_UPLOADS} uploads already; try again shortly`)
    try {
      await next()
    } finally {
      uploads.release()
    }
  }, bodyLimit({
    // The multipart wrapping around the files is small.
    maxSize: options.maxUploadBytes + 64 * 1024,
    onError: c => refuse(c, 413, 'LimitExceededError', `the upload is over this peer's limit of ${options.maxUploadBytes} bytes (--max-upload-bytes)`),
  }), async c => {
    const form = await c.req.parseBody({ all: true }).catch(() => undefined)
    if (form === undefined) return refuse(c, 400, 'InvalidParameterError', 'expected a form upload (multipart/form-data) with the images as "file"')
    const field = (name: string): string | undefined => typeof form[name] === 'string' ? form[name] : undefined
    const files = ([] as unknown[]).concat(form.file ?? []).filter((f): f is File => f instanceof File)
    if (files.length > MAX_FILES) return refuse(c, 413, 'LimitExceededError', `${files.length} files in one upload: the page takes ${MAX_FILES} at most (the CLI takes a folder of any size)`)
    const uploads: Upload[] = await Promise.all(files.map(async f => ({ name: f.name, data: Buffer.from(await f.arrayBuffer()) })))
    const total = uploads.reduce((n, u) => n + u.data.length, 0)
    if (total > options.maxUploadBytes) return refuse(c, 413, 'LimitExceededError', `the upload is over this peer's limit of ${options.maxUploadBytes} bytes (--max-upload-bytes)`)
    const format = field('format')
    if (format !== undefined && format !== '' && !(OUTPUT_FORMATS as readonly string[]).includes(format)) return refuse(c, 400, 'InvalidParameterError', `format '${format}' is not one of ${OUTPUT_FORMATS.join(', ')}`)
    const quality = field('quality')
    const verify = field('verify')
    let verifyLevel: VerifyLevel | undefined
    try {
      verifyLevel = verify !== undefined && verify !== '' ? parseVerifyLevel(verify) : undefined
    } catch (err) {
      return refuse(c, 400, 'InvalidParameterError', (err as Error).message.replace('--verify', 'verify'))
    }
    const job = await jobs.start({
      ops: field('ops') ?? '',
      ...(format !== undefined && format !== '' ? { format: format as OutputFormat } : {}),
      ...(quality !== undefined && quality !== '' ? { quality: Number(quality) } : {}),
      ...(verifyLevel !== undefined ? { verify: verifyLevel } : {}),
      files: uploads,
    })
    return c.json(describeJob(job), 202)
  })
  app.get('/api/jobs/:id', c => {
    const job = jobs.get(c.req.param('id'))
    return job === undefined ? refuse(c, 404, 'NotFound', 'no such job (a job is kept for an hour after it ends)') : c.json(describeJob(job))
  })
  app.get('/api/jobs/:id/result', async c => {
    const job = jobs.get(c.req.param('id'))
    if (job === undefined) return refuse(c, 404, 'NotFound', 'no such job (a job is kept for an hour after it ends)')
    const result = job.state === 'done' ? job.result : undefined
    if (result === undefined) return refuse(c, 404, 'NotFound', job.state === 'running' ? 'the job is still running' : `the job failed: ${job.error?.message ?? 'no result'}`)
    const disposition = c.req.query('download') !== undefined ? `attachment; filename="${result.filename}"` : 'inline'
    const file = Readable.toWeb(createReadStream(result.path)) as ReadableStream<Uint8Array>
    return c.body(file, 200, { 'content-type': result.type, 'content-length': String(result.bytes), 'content-disposition': disposition })
  })
  // Progress: every event so far, then each as it comes, then 'end'.
  app.get('/api/jobs/:id/events', c => {
    const job = jobs.get(c.req.param('id'))
    if (job === undefined) return refuse(c, 404, 'NotFound', 'no such job')
    // A browser that reconnects says what it last had: it gets the rest, not everything again.
    const after = Number(c.req.header('last-event-id') ?? -1)
    return streamSSE(c, async stream => {
      const queue = job.events.filter(e => e.seq > after)
      let wake: (() => void) | undefined
      let gone = false
      stream.onAbort(() => { gone = true; wake?.() })
      const listener = (e: Sequenced): void => { queue.push(e); wake?.() }
      job.listeners.add(listener)
      try {
        for (;;) {
          while (queue.length > 0 && !gone) {
            const { seq, event } = queue.shift()!
            await stream.writeSSE({ id: String(seq), data: JSON.stringify(event) })
          }
          if (gone || job.state !== 'running') break
          await new Promise<void>(resolve => { wake = resolve })
          wake = undefined
        }
        if (!gone) await stream.writeSSE({ event: 'end', data: JSON.stringify(describeJob(job)) })
      } finally {
        job.listeners.delete(listener)
      }
    })
  })
  app.notFound(c => refuse(c, 404, 'NotFound', 'no such page'))
  app.onError((err, c) => {
    if (err instanceof TileswarmError) return refuse(c, err instanceof LimitExceededError ? 413 : err instanceof NetworkError || err instanceof PeerBusyError ? 503 : 400, err.name, err.message)
    log(`web: ${c.req.method} ${c.req.path} failed: ${err.stack ?? err.message}`, 'error')
    return refuse(c, 500, 'InternalError', 'something went wrong on this peer (its log says what)')
  })

  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: address.host, port: address.port }, () => { resolve(s) })
    s.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE'
        ? new NetworkError(`cannot serve the web page on ${options.listen}: the address is in use (another peer's page?); give --http another host:port, or --http off`)
        : new NetworkError(`cannot serve the web page on ${options.listen}: ${err.code ?? err.message}`))
    })
  })
  port = (server.address() as AddressInfo).port
  const host = address.host.includes(':') ? `[${address.host}]` : address.host
  return {
    url: `http://${host}:${port}/`,
    tokenRequired,
    close: async () => {
      await new Promise<void>(resolve => { server.close(() => { resolve() }); (server as { closeAllConnections?: () => void }).closeAllConnections?.() })
      await jobs.close()
      if (client !== undefined) await (await client).stop()
    },
  }
}
