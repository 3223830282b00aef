import { resolve } from 'node:path'
import type { Command } from 'commander'
import { InvalidParameterError } from '../common/errors.ts'
import type { Log } from '../common/log.ts'
import { readSwarmKey } from '../net/swarm-key.ts'
import { isLoopback } from '../net/address.ts'
import type { SwarmPeer } from '../swarm/peer.ts'
import type { WebServer } from '../web/server.ts'
import { readAllowList, readPriorityList } from './allow-list.ts'
import type { CliContext } from './context.ts'
import { recordPeer } from './local-peer.ts'
import { flagVariables } from './env-options.ts'
import { MB_BYTES, uploadPaceFromFlags, type PeerFlags } from './peer-flags.ts'
import { pageLine, scalingLine, upLine, type PeerAccess } from './peer-lines.ts'
import { peerOptionsFromFlags } from './peer-options.ts'
import { fail, type Reporting } from './report.ts'

type WebModule = typeof import('../web/server.ts')

/** The peer command: its flags checked, the peer and its web page started, both stopped on SIGINT or SIGTERM. */
export async function runPeer (flags: PeerFlags, command: Command, context: CliContext): Promise<void> {
  context.reporting.debug = flags.debug === true
  const options = peerOptionsFromFlags(flags, { flagVariables: flagVariables(command) })
  const web = await import('../web/server.ts')
  const access = await readAccess(flags, web)
  // Loaded for a peer only, as the swarm's modules: a submit starts without them.
  const { createLog } = await import('../common/logger.ts')
  const logger = createLog({ level: flags.logLevel, format: flags.logFormat })
  const log = logger.log
  // Loaded for a peer only: a submit (or --help) starts without the swarm's modules.
  const { SwarmPeer } = await import('../swarm/peer.ts')
  const peer = await SwarmPeer.start({ ...options, swarmKey: access.swarmKey, allowSubmit: access.allowSubmit, ...(access.httpToken !== undefined ? { operatorToken: access.httpToken } : {}), ...(access.allowPriority !== undefined ? { allowPriority: access.allowPriority } : {}), log, ...context.compute })
  logger.setPeer(peer.peerId)
  const page = await startPage({ flags, access, peer, log, web, httpGiven: command.getOptionValueSource('http') !== 'default' })
  stopOnSignals(peer, page, log, context.reporting)
  // Commands on this machine given no --peer find it here.
  await recordPeer(flags.dataDir, { pid: process.pid, peerId: peer.peerId, addrs: peer.localAddrs(), ...(flags.swarmKey !== undefined ? { swarmKey: resolve(flags.swarmKey) } : {}) })
  // Only now: whoever waits for these lines may signal at once.
  for (const addr of peer.addrs()) process.stdout.write(`listening on ${addr}\n`)
  if (page !== undefined) process.stdout.write(pageLine(page.url, access))
  log(upLine(flags, peer.peerId, access))
  if (peer.scaler !== undefined) log(scalingLine(flags, peer.scaler.acting))
}

/** The swarm key and who may submit, read; the web page's address and token checked. */
async function readAccess (flags: PeerFlags, web: WebModule): Promise<PeerAccess> {
  const http = web.parseHttpAddress(flags.http)
  if (flags.httpToken !== undefined) web.checkToken(flags.httpToken)
  const swarmKey = flags.swarmKey !== undefined ? await readSwarmKey(flags.swarmKey) : undefined
  const allowSubmit = await readAllowList(flags.allowSubmit, flags.allowSubmitFile)
  const allowPriority = readPriorityList(flags.allowPriority)
  const offLoopback = http !== undefined && !isLoopback(http.host)
  // Derived from the swarm key, a token is every peer's: not enough where submitting is narrowed to --allow-submit.
  const derived = flags.httpToken === undefined && offLoopback && swarmKey !== undefined && allowSubmit === undefined
  const httpToken = flags.httpToken ?? (derived ? web.tokenFromSwarmKey(swarmKey) : undefined)
  if (offLoopback && httpToken === undefined) {
    throw new InvalidParameterError(`--http ${flags.http} is reachable from other machines: give --http-token <secret>${allowSubmit === undefined ? ' (or --swarm-key, from which a token is derived)' : ''}, or bind to 127.0.0.1`)
  }
  return { serve: http !== undefined, swarmKey, allowSubmit, allowPriority, httpToken, derived }
}

interface PageStart {
  flags: PeerFlags
  access: PeerAccess
  peer: SwarmPeer
  log: Log
  web: WebModule
  /** --http was given (a flag or its variable), not its default. */
  httpGiven: boolean
}

/** The web page, unless --http off. The default address taken (another peer on this machine): this one goes without a page, and says so. */
async function startPage ({ flags, access, peer, log, web, httpGiven }: PageStart): Promise<WebServer | undefined> {
  if (!access.serve) return undefined
  try {
    return await web.startWebServer({ listen: flags.http, ...(access.httpToken !== undefined ? { token: access.httpToken } : {}), peer, maxUploadBytes: flags.maxUploadBytes, maxPixels: flags.maxPixels, swarmKey: access.swarmKey, allowSubmit: access.allowSubmit, canSubmit: access.allowSubmit === undefined || flags.httpToken !== undefined, headerTimeoutMs: flags.webHeaderTimeout * 1000, pace: uploadPaceFromFlags(flags), resultsBytes: flags.webResultsMb * MB_BYTES, log })
  } catch (err) {
    if (httpGiven) {
      await peer.stop()
      throw err
    }
    log(`no web page: ${(err as Error).message}`, 'warn')
    return undefined
  }
}

/** The first signal hands back leases and ends jobs, then exits 0; a second exits at once. */
function stopOnSignals (peer: SwarmPeer, page: WebServer | undefined, log: Log, reporting: Reporting): void {
  let stopping = false
  const shutdown = (signal: string): void => {
    if (stopping) {
      log(`${signal} again: exiting now`)
      process.exit(1)
    }
    stopping = true
    log(`${signal}: handing back ${peer.worker.heldLeases} leases, ending ${peer.submissions.activeJobs} coordinated jobs`)
    Promise.all([page?.close(), peer.stop()]).then(() => { log('stopped'); process.exit(0) }, err => { fail(reporting, err) })
  }
  process.on('SIGINT', () => { shutdown('SIGINT') })
  process.on('SIGTERM', () => { shutdown('SIGTERM') })
}
