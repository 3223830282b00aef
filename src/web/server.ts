import { createHash } from 'node:crypto'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve, type ServerType } from '@hono/node-server'
import { Hono } from 'hono'
import { secureHeaders } from 'hono/secure-headers'
import type { Libp2p } from 'libp2p'
import { DEFAULT_QUALITY, DEFAULT_WEB_HEADER_TIMEOUT_MS } from '../common/defaults.ts'
import type { Clock } from '../common/clock.ts'
import { DEFAULT_PACE, type PaceRule } from '../common/upload-pace.ts'
import { InvalidParameterError, LimitExceededError, NetworkError, PeerBusyError, TileswarmError } from '../common/errors.ts'
import type { Log } from '../common/log.ts'
import { expected, OPERATIONS } from '../imaging/index.ts'
import { OUTPUT_FORMATS } from '../protocol/constants.ts'
import { createClientNode } from '../net/node.ts'
import { isLoopback } from '../net/address.ts'
import type { SwarmPeer } from '../swarm/peer.ts'
import { sameSite, tokenGate } from './access.ts'
import { jobRoutes } from './job-routes.ts'
import { WebJobs } from './jobs.ts'
import { Pages } from './pages.ts'
import { refuse } from './refuse.ts'
import { answerClientErrors, timeoutOptions } from './slow-headers.ts'
import { UploadPlaces, uploadGate } from './upload-gate.ts'
import { PeerSamples } from './peer-samples.ts'
import { processLoad } from '../swarm/peer-status.ts'
import { systemClock } from '../common/clock.ts'
import { cancelSwarmJob, swarmJobRoutes } from './swarm-job-routes.ts'

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
  /** A request's headers come within this (--web-header-timeout). */
  headerTimeoutMs?: number
  /** How fast an upload must come (--min-upload-kbps, --upload-timeout). */
  pace?: PaceRule
  /** Upload places in all and per client address. */
  uploads?: { total?: number, perClient?: number }
  /** The page's results on disk at most (--web-results-mb). */
  resultsBytes?: number
  /** Times the uploads' pace; the system's unless given. */
  clock?: Clock
  log: Log
}

export interface WebServer {
  /** Where the page is: http://host:port/ */
  url: string
  /** Whether requests must carry the token. */
  tokenRequired: boolean
  close: () => Promise<void>
}

/** `--http`: host:port, or off. */
export function parseHttpAddress (text: string): { host: string, port: number } | undefined {
  if (text === 'off') return undefined
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text)
  const port = m !== null ? Number(m[2]) : NaN
  if (m === null || port > 65535) throw expected('host:port (like 127.0.0.1:8080, or 0.0.0.0:8080 for other machines) or off', '--http', text)
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

/**
 * The peer's HTTP face: the page (upload, choose operations, watch the tile
 * map fill in, download), the dashboard, /metrics, /healthz, and the JSON
 * API they use. Only its own assets are served, each by name from a fixed
 * list; off loopback, everything but /healthz and those assets needs the token.
 */
export async function startWebServer (options: WebServerOptions): Promise<WebServer> {
  const { peer } = options
  const address = parseHttpAddress(options.listen)
  if (address === undefined) throw new InvalidParameterError('the web server is off (--http off)')
  const tokenRequired = !isLoopback(address.host)
  if (tokenRequired && options.token === undefined) {
    throw new InvalidParameterError(`--http ${options.listen} is reachable from other machines: give --http-token <secret> (or --swarm-key, from which a token is derived), or bind to 127.0.0.1`)
  }
  if (options.token !== undefined) checkToken(options.token)
  const canSubmit = options.canSubmit ?? true
  const pages = await Pages.load()
  const client = new PageClient({ swarmKey: options.swarmKey, allowSubmit: canSubmit ? options.allowSubmit : undefined, made: id => { peer.submissions.pageClient(id) } })
  // The page's jobs go in at this peer, which coordinates them, as for a submit sent to it.
  const swarm = { peer, token: options.token, client: async () => await client.node(), ...(options.swarmKey !== undefined ? { swarmKey: options.swarmKey } : {}) }
  const jobs = new WebJobs({ entry: () => peer.localAddrs(), client: swarm.client, log: options.log, maxPixels: options.maxPixels, cancel: async id => { await cancelSwarmJob(swarm, id, { submitter: true }) }, ...(options.resultsBytes !== undefined ? { resultsBytes: options.resultsBytes } : {}) })
  const pace = options.pace ?? DEFAULT_PACE
  const gate = uploadGate({ places: new UploadPlaces(options.uploads), pace, ...(options.clock !== undefined ? { clock: options.clock } : {}) })
  peer.metrics.addProcessMetrics()

  // The port as served (port 0 picks one): the Host check and the cookie name use it.
  let port = address.port
  const app = new Hono()
  app.use('*', secureHeaders({
    contentSecurityPolicy: { defaultSrc: ["'none'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'blob:'], connectSrc: ["'self'"], formAction: ["'self'"], frameAncestors: ["'none'"], baseUri: ["'none'"] },
    referrerPolicy: 'no-referrer',
    // Plain HTTP: a browser ignores HSTS there, and a peer cannot promise TLS on that name.
    strictTransportSecurity: false,
  }))
  app.use('*', sameSite({ host: address.host, port: () => port, tokenRequired }))
  // Browsers ask for it unbidden; there is none.
  app.get('/favicon.ico', c => c.body(null, 204))
  app.get('/healthz', c => c.json({ status: 'ok', peerId: peer.peerId, peers: peer.gossip.swarmPeers(), jobs: peer.submissions.activeJobs }))
  pages.serveAssets(app)
  app.use('*', tokenGate({ token: options.token, port: () => port }))
  app.get('/', pages.page('index.html'))
  app.get('/dashboard', pages.page('dashboard.html'))
  peerRoutes(app, { peer, canSubmit, maxUploadBytes: options.maxUploadBytes })
  jobRoutes(app, { jobs, canSubmit, maxUploadBytes: options.maxUploadBytes, uploadGate: gate, operator: options.token !== undefined })
  swarmJobRoutes(app, swarm)
  // The dashboard's graphs: each peer's CPU, memory and pace over the last minutes.
  const samples = new PeerSamples({ clock: options.clock ?? systemClock, status: () => peer.status(), own: processLoad() })
  samples.start()
  app.get('/api/peer-samples', c => c.json(samples.view()))
  app.notFound(c => refuse(c, 404, 'NotFound', 'no such page'))
  app.onError((err, c) => {
    if (err instanceof TileswarmError) return refuse(c, err instanceof LimitExceededError ? 413 : err instanceof NetworkError || err instanceof PeerBusyError ? 503 : 400, err.name, err.message)
    options.log(`web: ${c.req.method} ${c.req.path} failed: ${err.stack ?? err.message}`, 'error')
    return refuse(c, 500, 'InternalError', 'something went wrong on this peer (its log says what)')
  })

  const timeouts = { headerTimeoutMs: options.headerTimeoutMs ?? DEFAULT_WEB_HEADER_TIMEOUT_MS, requestTimeoutMs: pace.timeoutMs }
  const server = await listen(app, address, options.listen, timeouts)
  answerClientErrors(server as Server, timeouts)
  port = (server.address() as AddressInfo).port
  const host = address.host.includes(':') ? `[${address.host}]` : address.host
  return {
    url: `http://${host}:${port}/`,
    tokenRequired,
    close: async () => {
      await new Promise<void>(resolve => { server.close(() => { resolve() }); (server as { closeAllConnections?: () => void }).closeAllConnections?.() })
      samples.close()
      await jobs.close()
      await client.stop()
    },
  }
}

/** What the page and the dashboard read of this peer: its metrics, the swarm's status, and the operations it offers. */
function peerRoutes (app: Hono, options: { peer: SwarmPeer, canSubmit: boolean, maxUploadBytes: number }): void {
  const { peer } = options
  app.get('/metrics', async c => c.body(await peer.metrics.registry.metrics(), 200, { 'content-type': peer.metrics.registry.contentType }))
  app.get('/api/status', async c => c.json(await peer.detailedStatus()))
  app.get('/api/ops', c => c.json({
    formats: OUTPUT_FORMATS,
    quality: DEFAULT_QUALITY,
    canSubmit: options.canSubmit,
    maxUploadBytes: options.maxUploadBytes,
    operations: OPERATIONS.map(op => ({ name: op.name, family: op.family, summary: op.summary, example: op.example, params: op.params })),
  }))
}

interface PageClientOptions {
  swarmKey?: Uint8Array | undefined
  allowSubmit?: Set<string> | undefined
  /** The node is made: the peer hears its id, so its jobs count as the page's (one submitter in the shares). */
  made: (peerId: string) => void
}

/** The page's client node, made at its first job: its jobs go to the swarm from it. */
class PageClient {
  private readonly options: PageClientOptions
  private client: Promise<Libp2p> | undefined

  constructor (options: PageClientOptions) {
    this.options = options
  }

  async node (): Promise<Libp2p> {
    this.client ??= createClientNode({ swarmKey: this.options.swarmKey }).then(node => {
      // The page's uploads are let in by the HTTP token, not by peer id (and only where the page may submit).
      this.options.allowSubmit?.add(node.peerId.toString())
      this.options.made(node.peerId.toString())
      return node
    })
    return await this.client
  }

  async stop (): Promise<void> {
    if (this.client !== undefined) await (await this.client).stop()
  }
}

async function listen (app: Hono, address: { host: string, port: number }, listen: string, timeouts: { headerTimeoutMs: number, requestTimeoutMs: number }): Promise<ServerType> {
  return await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: address.host, port: address.port, serverOptions: timeoutOptions(timeouts) }, () => { resolve(s) })
    s.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE'
        ? new NetworkError(`cannot serve the web page on ${listen}: the address is in use (another peer's page?); give --http another host:port, or --http off`)
        : new NetworkError(`cannot serve the web page on ${listen}: ${err.code ?? err.message}`))
    })
  })
}
