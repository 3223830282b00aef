import type { EventEmitter } from 'node:events'
import { availableParallelism, homedir, networkInterfaces } from 'node:os'
import { join, resolve } from 'node:path'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { integerOption, verifyOption } from './args.ts'
import { VERSION } from '../common/version.ts'
import { didYouMean } from '../common/suggest.ts'
import { DEFAULT_SCALE_COOLDOWN_S, DEFAULT_SCALE_HOOK_TIMEOUT_S, DEFAULT_SCALE_IN_AFTER_S, DEFAULT_SCALE_MAX, DEFAULT_SCALE_OUT_AFTER_S, DEFAULT_INPUT_MEMORY_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_RESULT_CACHE_BYTES, DEFAULT_RESULT_CACHE_MS, MAX_TILE_SIZE, MIN_TILE_SIZE } from '../common/defaults.ts'
import { describeOperations } from '../imaging/index.ts'
import { runLocal } from '../client/local.ts'
import { removePartials, stopWriting } from '../client/files.ts'
import { parseQuality, pipelineFromFlags, requestFromFlags, type SubmitFlags } from '../client/options.ts'
import { batchReporter, progressReporter, verifyResultText } from '../client/progress.ts'
import { DEFAULT_VERIFY_FLOOR, type VerifyLevel } from '../job/verify.ts'
import { BATCH_INCOMPLETE_EXIT, DEFAULT_TILE_ABOVE_MP, runLocalBatch, submitBatch, type BatchEvent } from '../client/batch.ts'
import { isBatchInput, planBatch } from '../client/batch-plan.ts'
import { formatFromPath, OUTPUT_FORMATS, type OutputFormat } from '../imaging/index.ts'
import { stat } from 'node:fs/promises'
import { submitToSwarm, type SwarmSubmitOptions } from '../client/submit.ts'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { readFile } from 'node:fs/promises'
import { InvalidParameterError, isUserFacing, oneLine } from '../common/errors.ts'
import { shortId } from '../common/log.ts'
import { loadOrCreateKey } from '../net/identity.ts'
import { readSwarmKey, writeSwarmKey } from '../net/swarm-key.ts'
import { isLoopback, parseAnnounceAddress, parseListenAddress, parsePeerAddress } from '../net/address.ts'
import type { PeerOptions } from '../swarm/options.ts'
import { coordinatingOptions, coordinatingSettings, coordinatingSummary, type CoordinatingFlags } from './coordinating.ts'
import { LOG_FORMATS, LOG_LEVELS, type LogLevel } from '../common/log.ts'
import { createClientNode } from '../net/node.ts'

let debug = false
/** What a batch says when it is interrupted. */
let onInterrupt: (() => void) | undefined
/** --json: errors too are one JSON event on stdout, like every other event. */
let json = false

function fail (err: unknown): never {
  const message = err instanceof Error ? (debug || !isUserFacing(err) ? (err.stack ?? err.message) : oneLine(err.message)) : String(err)
  if (json) process.stdout.write(JSON.stringify({ event: 'error', name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? oneLine(err.message) : String(err) }) + '\n')
  if (!json || debug) process.stderr.write(`tileswarm: ${message}\n`)
  process.exit(1)
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v]
/** Repeatable addresses and ids: each flag adds one, an environment variable may list several (comma or space between). */
const collectList = (v: string, prev: string[] = []): string[] => [...prev, ...v.split(/[\s,]+/).filter(a => a !== '')]

/** Every flag of `command` may come from TILESWARM_<FLAG> as well (a flag given wins); --help says which. */
function fromEnvironment (command: Command, only?: string[]): Command {
  for (const option of command.options) {
    const name = option.long?.replace(/^--/, '')
    if (name === undefined || name === 'help' || (only !== undefined && !only.includes(name))) continue
    const variable = `TILESWARM_${name.replace(/[-_]/g, '_').toUpperCase()}`
    option.env(variable)
    // Commander reads the environment only for options made with it; these were not: the value goes through the flag's own parser.
    command.on(`optionEnv:${option.name()}`, (value?: string) => {
      // VAR= in an env file means unset.
      if (value === '') return
      // A bad value is said to come from the variable, not from a flag nobody gave.
      if (value !== undefined && option.parseArg !== undefined) {
        try {
          option.parseArg(value, undefined)
        } catch (err) {
          throw new InvalidArgumentError(`${variable}='${value}': ${(err as Error).message.replace(/^Allowed choices are (.*)\.$/, 'not one of $1')}`)
        }
      }
      (command as unknown as EventEmitter).emit(`option:${option.name()}`, value)
      command.setOptionValueWithSource(option.attributeName(), command.getOptionValue(option.attributeName()), 'env')
    })
  }
  return command
}

/** A flag that takes one value: given twice, it is refused rather than the first silently dropped. */
function once (flag: string) {
  return (value: string, previous: unknown): string => {
    if (previous !== undefined) throw new InvalidArgumentError(`${flag} given twice ('${String(previous)}' and '${value}'); give it once`)
    return value
  }
}

/** Commander's words around our own message ("option '--x <v>' argument 'y' is invalid.") say nothing ours does not. */
function plainUsageError (message: string): string {
  const choice = message.match(/^(?:error: )?option '(--[\w-]+)[^']*' argument '([^']*)' is invalid\. Allowed choices are (.*)\.(\s*)$/)
  if (choice !== null) return `${choice[1]} '${choice[2]}' is not one of ${choice[3]}${choice[4]}`
  return message.replace(/^error: /, '').replace(/^option '[^']*' argument '[^']*' is invalid\. /, '')
}

async function allowList (ids: string[] | undefined, file: string | undefined): Promise<Set<string> | undefined> {
  if (ids === undefined && file === undefined) return undefined
  const all = [...(ids ?? [])]
  if (file !== undefined) {
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => { throw new InvalidParameterError(`cannot read --allow-submit-file ${file}: ${err.code ?? err.message}`) })
    all.push(...text.split('\n').map(l => l.replace(/#.*/, '').trim()).filter(l => l !== ''))
  }
  for (const id of all) {
    try {
      peerIdFromString(id)
    } catch {
      throw new InvalidParameterError(`Expected a peer id for --allow-submit but received '${id}'`)
    }
  }
  return new Set(all)
}

interface PeerCliOptions extends CoordinatingFlags {
  swarmKey?: string
  allowSubmit?: string[]
  allowSubmitFile?: string
  listen?: string[]
  bootstrap?: string[]
  dataDir: string
  slots: number
  resultCacheMb: number
  inputMemoryMb: number
  resultCacheS: number
  announce?: string[]
  http: string
  httpToken?: string
  logLevel: LogLevel
  logFormat: 'text' | 'json'
  scaleOut?: string
  scaleIn?: string
  scaleOutAfter: number
  scaleInAfter: number
  scaleMax: number
  scaleCooldown: number
  scaleHookTimeout: number
  scaledBy?: string
  debug?: boolean
}

/** Compute a peer runs with; the simulator's emulated hosts swap in a cost model. */
export type PeerCompute = Pick<PeerOptions, 'decodeInput' | 'process'>

function peerCommand (compute: PeerCompute): Command {
  const command: Command = coordinatingOptions(new Command('peer')
    .description('run a peer (the default): work on the swarm\'s tiles and coordinate jobs submitted here')
    .option('--listen <multiaddr>', 'address to listen on; repeatable (default /ip4/0.0.0.0/tcp/4001; /tcp/0 picks a free port)', collectList)
    .option('--bootstrap <multiaddr>', 'a peer of the swarm to join through (with its /p2p/<id>, so the right peer is checked); repeatable', collectList)
    .option('--announce <multiaddr>', 'the address other peers should dial, told instead of the listening ones (a VM behind NAT: its public address); repeatable', collectList)
    .option('--http <host:port>', 'serve the web page, dashboard, /metrics and /healthz here; off for none. Off loopback it needs a token', '127.0.0.1:8080')
    .option('--http-token <secret>', 'the token the web server asks for (16 characters at least); needed off loopback, where it defaults to one derived from --swarm-key (tileswarm http-token), unless --allow-submit is given')
    .addOption(new Option('--log-level <level>', 'least important log lines shown').choices(LOG_LEVELS).default('info'))
    .addOption(new Option('--log-format <format>', 'log lines as text, or as JSON objects (one a line) for a log collector').choices(LOG_FORMATS).default('text'))
    .option('--data-dir <dir>', 'keeps the identity key, so a restarted peer keeps its peer id', join(homedir(), '.tileswarm'))
    .option('--slots <n>', 'libvips threads this peer computes with (it holds up to four tiles per slot, so the next is ready)', integerOption('--slots', 1, 1024), availableParallelism()))
    .option('--result-cache-mb <n>', 'tile results kept for other coordinators\' jobs, so a job that loses its coordinator need not compute them again', integerOption('--result-cache-mb', 0, 1_000_000), DEFAULT_RESULT_CACHE_BYTES / 1024 / 1024)
    .option('--input-memory-mb <n>', 'decoded inputs of the jobs this peer coordinates, at most (each is a whole raw image, decoded once for the whole swarm); a job past it is refused as busy, and its client tries another peer', integerOption('--input-memory-mb', 1, 10_000_000), DEFAULT_INPUT_MEMORY_BYTES / 1024 / 1024)
    .option('--result-cache-s <s>', 'how long such results are kept', integerOption('--result-cache-s', 0, 86_400), DEFAULT_RESULT_CACHE_MS / 1000)
    .option('--swarm-key <file>', 'make the swarm private: only peers and clients with this key can connect (tileswarm keygen)')
    .option('--allow-submit <peer id>', 'only these peer ids may submit jobs here; repeatable (default: anyone in the swarm)', collectList)
    .option('--allow-submit-file <file>', 'as --allow-submit, one peer id per line (# comments)')
    .option('--scale-out <command>', 'a shell command that adds peers when work waits: run when the swarm\'s backlog would take longer than --scale-out-after to drain, with TILESWARM_SCALE_COUNT (peers wanted), TILESWARM_BOOTSTRAP (this peer), TILESWARM_SCALED_BY (its id) and TILESWARM_SWARM_KEY (the key file, if any) set; e.g. "deploy/local-peers.sh up". Of the peers with one, the lowest id acts')
    .option('--scale-in <command>', 'a shell command that stops peers the scale-out hook started, once the swarm has had no backlog for --scale-in-after: TILESWARM_SCALE_PEERS names them (peer ids, space-separated); e.g. "deploy/local-peers.sh down"')
    .option('--scale-out-after <s>', 'scale out when the backlog would take longer than this to drain with the slots at hand (and has for a third of it)', integerOption('--scale-out-after', 1, 86_400), DEFAULT_SCALE_OUT_AFTER_S)
    .option('--scale-in-after <s>', 'scale in once the swarm has had no backlog this long', integerOption('--scale-in-after', 1, 86_400), DEFAULT_SCALE_IN_AFTER_S)
    .option('--scale-max <n>', 'peers the scale-out hook may have up (or on their way) at once', integerOption('--scale-max', 1, 10_000), DEFAULT_SCALE_MAX)
    .option('--scale-cooldown <s>', 'after a hook has run, none runs for this long: started peers take a while to join', integerOption('--scale-cooldown', 0, 86_400), DEFAULT_SCALE_COOLDOWN_S)
    .option('--scale-hook-timeout <s>', 'a hook still running after this long is killed and reported', integerOption('--scale-hook-timeout', 1, 86_400), DEFAULT_SCALE_HOOK_TIMEOUT_S)
    .option('--scaled-by <peer id>', 'the peer whose scale-out hook started this one (hooks set TILESWARM_SCALED_BY): said to the swarm, so that peer may stop this one when it is idle')
    .option('--debug', 'stack traces on errors')
    .action(async (opts: PeerCliOptions) => {
      debug = opts.debug === true
      for (const addr of opts.listen ?? []) parseListenAddress(addr)
      for (const addr of opts.bootstrap ?? []) parsePeerAddress(addr, '--bootstrap')
      for (const addr of opts.announce ?? []) parseAnnounceAddress(addr)
      if (opts.scaledBy !== undefined) {
        try {
          peerIdFromString(opts.scaledBy)
        } catch {
          throw new InvalidParameterError(`--scaled-by takes a peer id (12D3KooW...), not '${opts.scaledBy}'`)
        }
      }
      const { parseHttpAddress, tokenFromSwarmKey, checkToken, startWebServer } = await import('../web/server.ts')
      const http = parseHttpAddress(opts.http)
      if (opts.httpToken !== undefined) checkToken(opts.httpToken)
      const swarmKey = opts.swarmKey !== undefined ? await readSwarmKey(opts.swarmKey) : undefined
      const allowSubmit = await allowList(opts.allowSubmit, opts.allowSubmitFile)
      // Derived from the swarm key, a token is every peer's: not enough where submitting is narrowed to --allow-submit.
      const derived = opts.httpToken === undefined && http !== undefined && !isLoopback(http.host) && swarmKey !== undefined && allowSubmit === undefined
      const httpToken = opts.httpToken ?? (derived ? tokenFromSwarmKey(swarmKey!) : undefined)
      if (http !== undefined && !isLoopback(http.host) && httpToken === undefined) {
        throw new InvalidParameterError(`--http ${opts.http} is reachable from other machines: give --http-token <secret>${allowSubmit === undefined ? ' (or --swarm-key, from which a token is derived)' : ''}, or bind to 127.0.0.1`)
      }
      // Loaded for a peer only, as the swarm's modules: a submit starts without them.
      const { createLog } = await import('../common/logger.ts')
      const logger = createLog({ level: opts.logLevel, format: opts.logFormat })
      const log = logger.log
      // Loaded for a peer only: a submit (or --help) starts without the swarm's modules.
      const { SwarmPeer } = await import('../swarm/peer.ts')
      const peer = await SwarmPeer.start({
        listen: opts.listen ?? ['/ip4/0.0.0.0/tcp/4001'],
        bootstrap: opts.bootstrap ?? [],
        announce: opts.announce,
        dataDir: opts.dataDir,
        slots: opts.slots,
        ...coordinatingSettings(opts),
        resultCacheBytes: opts.resultCacheMb * 1024 * 1024,
        inputMemoryBytes: opts.inputMemoryMb * 1024 * 1024,
        resultCacheMs: opts.resultCacheS * 1000,
        swarmKey,
        allowSubmit,
        log,
        ...(opts.scaleOut !== undefined || opts.scaleIn !== undefined
          ? {
              scale: {
                ...(opts.scaleOut !== undefined ? { out: opts.scaleOut } : {}),
                ...(opts.scaleIn !== undefined ? { in: opts.scaleIn } : {}),
                outAfterMs: opts.scaleOutAfter * 1000,
                inAfterMs: opts.scaleInAfter * 1000,
                max: opts.scaleMax,
                cooldownMs: opts.scaleCooldown * 1000,
                hookTimeoutMs: opts.scaleHookTimeout * 1000,
                ...(opts.swarmKey !== undefined ? { swarmKeyPath: resolve(opts.swarmKey) } : {}),
                // The peers a hook starts need their own data dir and ports, not this peer's settings.
                dropEnv: command.options.map(o => o.envVar).filter(v => v !== undefined),
              },
            }
          : {}),
        ...(opts.scaledBy !== undefined ? { scaledBy: opts.scaledBy } : {}),
        ...compute,
      })
      logger.setPeer(peer.peerId)
      // The default address taken (another peer on this machine): this one goes without a page, and says so.
      let web: Awaited<ReturnType<typeof startWebServer>> | undefined
      if (http !== undefined) {
        try {
          web = await startWebServer({ listen: opts.http, ...(httpToken !== undefined ? { token: httpToken } : {}), peer, maxUploadBytes: opts.maxUploadBytes, maxPixels: opts.maxPixels, swarmKey, allowSubmit, canSubmit: allowSubmit === undefined || opts.httpToken !== undefined, log })
        } catch (err) {
          if (command.getOptionValueSource('http') !== 'default') {
            await peer.stop()
            throw err
          }
          log(`no web page: ${(err as Error).message}`, 'warn')
        }
      }
      let stopping = false
      const shutdown = (signal: string): void => {
        if (stopping) {
          log(`${signal} again: exiting now`)
          process.exit(1)
        }
        stopping = true
        log(`${signal}: handing back ${peer.worker.heldLeases} leases, ending ${peer.submissions.activeJobs} coordinated jobs`)
        Promise.all([web?.close(), peer.stop()]).then(() => { log('stopped'); process.exit(0) }, err => { fail(err) })
      }
      process.on('SIGINT', () => { shutdown('SIGINT') })
      process.on('SIGTERM', () => { shutdown('SIGTERM') })
      // Only now: whoever waits for these lines may signal at once.
      for (const addr of peer.addrs()) process.stdout.write(`listening on ${addr}\n`)
      if (web !== undefined) {
        // The token goes into the address only on a terminal: a service's output ends up in its journal.
        const token = httpToken === undefined ? '' : process.stdout.isTTY ? `?token=${httpToken}` : ''
        const asks = httpToken === undefined || token !== '' ? '' : derived ? '; it asks for its token: tileswarm http-token --swarm-key <file> prints it' : '; it asks for --http-token'
        // Bound to every address: shown at one another machine can open.
        const url = web.url.replace(/^http:\/\/(0\.0\.0\.0|\[::\])/, `http://${Object.values(networkInterfaces()).flat().find(i => i !== undefined && i.family === 'IPv4' && !i.internal)?.address ?? '127.0.0.1'}`)
        process.stdout.write(`web page on ${url}${token} (dashboard: ${url}dashboard, metrics: ${url}metrics${asks})\n`)
      }
      log(`peer ${peer.peerId} (${shortId(peer.peerId)} in logs) up: ${opts.slots} slot${opts.slots === 1 ? '' : 's'} (libuv pool of ${process.env.UV_THREADPOOL_SIZE ?? 4}), ${coordinatingSummary(opts)}${swarmKey !== undefined ? ', private swarm' : ''}${allowSubmit !== undefined ? `, ${allowSubmit.size} peers may submit` : ''}`)
      if (peer.scaler !== undefined) log(`scaling:${opts.scaleOut !== undefined ? ` out (${opts.scaleOut}) when the backlog would take over ${opts.scaleOutAfter} s to drain, up to ${opts.scaleMax} peer${opts.scaleMax === 1 ? '' : 's'}${peer.scaler.acting ? '' : '; another peer with a scale-out hook and a lower id decides while it is here'};` : ''}${opts.scaleIn !== undefined ? ` in (${opts.scaleIn}) after ${opts.scaleInAfter} s without a backlog;` : ''} ${opts.scaleCooldown} s between hooks`)
    })
  return fromEnvironment(command)
}

interface SubmitCliOptions extends Omit<SubmitFlags, 'imagePath'> {
  imagePath?: string[]
  local?: boolean
  peer?: string[]
  listOps?: boolean
  json?: boolean
  debug?: boolean
  maxPixels: number
  maxUploadBytes: number
  threads: number
  tileSize?: number
  verify?: VerifyLevel
  connectTimeoutMs: number
  swarmKey?: string
  dataDir?: string
  recursive?: boolean
  format?: OutputFormat
  skipExisting?: boolean
  tileAboveMp: number
}

function submitCommand (): Command {
  const command: Command = new Command('submit')
    .description('process an image, or a batch of them (several -i, a folder, a glob): in this process (--local) or on a swarm (--peer)')
    .addHelpText('after', '\nExit status: 0 every output written (skipped ones count); 1 an error, nothing more done; 3 a batch in which some images failed (each named; the others are written); 130 interrupted (outputs written so far stay: --skip-existing goes on from there).')
    .option('--peer <multiaddr>', 'any peer of the swarm; it coordinates the job; repeat for more entry points (the job moves on if one is full or lost)', collectList)
    .option('--local', 'process here, whole image, no swarm: the reference output')
    .option('--task <op>', 'an operation (the Python prototype\'s flag); repeat for a pipeline', (v: string, prev: string[] = []) => [...prev, v])
    .option('--op <op>', 'same as --task', (v: string, prev: string[] = []) => [...prev, v])
    .option('--ops <pipeline>', 'a whole pipeline: "blur:sigma=2,sobel"', once('--ops'))
    .option('-i, --image-path <path>', 'input image (JPEG, PNG, WebP, TIFF, AVIF, HEIF, GIF first frame); repeat it, or give a folder or a quoted glob, for a batch', collect)
    .addOption(new Option('--image_path <path>', 'same as --image-path (the Python prototype\'s spelling)').argParser(collect))
    .option('-o, --out <path>', 'output file (.jpg .png .webp .tif .avif picks the format); for a batch, a folder (the input tree mirrored) or a .zip', once('--out'))
    .option('-r, --recursive', 'a folder\'s subfolders too (batch)')
    .addOption(new Option('--format <format>', 'output format of a batch (default: each image keeps its own; GIF and HEIF become PNG)').choices(OUTPUT_FORMATS))
    .option('--skip-existing', 'leave out images whose output exists: resumes an interrupted batch (written to a folder, not a .zip)')
    .option('--tile-above-mp <n>', 'in a batch, images over this many megapixels are tiled across the swarm, one job each; smaller ones go whole to one peer each', integerOption('--tile-above-mp', 1, 100_000), DEFAULT_TILE_ABOVE_MP)
    .addOption(new Option('--output_path <file>', 'same as --out').hideHelp().argParser(once('--output_path')))
    .option('--quality <1-100>', 'JPEG/WebP/AVIF quality (default 90)', once('--quality'))
    .option('--max-pixels <n>', 'refuse images with more pixels, before decoding (--local; a peer applies its own)', integerOption('--max-pixels'), DEFAULT_MAX_PIXELS)
    .option('--max-upload-bytes <n>', 'refuse larger input files', integerOption('--max-upload-bytes'), DEFAULT_MAX_UPLOAD_BYTES)
    .option('--threads <n>', 'libvips threads for --local', integerOption('--threads', 1, 1024), availableParallelism())
    .option('--tile-size <px>', 'tile edge (default: the coordinating peer\'s)', (value: string, previous: unknown) => integerOption('--tile-size', MIN_TILE_SIZE, MAX_TILE_SIZE)(once('--tile-size')(value, previous)))
    .option('--verify <share|all|off>', `catch wrong tiles from faulty or lying peers: a share of each peer's tiles is computed again by another and compared; a peer's first always, then fewer as its checks pass, never under this share (default ${DEFAULT_VERIFY_FLOOR}; 0: only new peers'); all: every tile of other peers twice (the coordinator trusts its own); off: none. Tiled jobs only: a batch's whole images are not checked`, (value: string, previous: unknown) => verifyOption(once('--verify')(value, previous)))
    .option('--connect-timeout-ms <ms>', 'give up on an unreachable peer after this long', integerOption('--connect-timeout-ms', 100, 600_000), 10_000)
    .option('--swarm-key <file>', 'the private swarm\'s key', once('--swarm-key'))
    .option('--data-dir <dir>', 'keep this client\'s identity there, for peers that use --allow-submit (tileswarm id)', once('--data-dir'))
    .option('--list-ops', 'print every operation with its parameters, and exit')
    .option('--json', 'machine-readable events, one JSON object per line')
    .option('--debug', 'stack traces on errors')
    .action(async (opts: SubmitCliOptions & { image_path?: string[], output_path?: string }) => {
      debug = opts.debug === true
      json = opts.json === true
      if (opts.listOps === true) {
        process.stdout.write(describeOperations() + '\n')
        return
      }
      if (opts.out !== undefined && opts.output_path !== undefined) throw new InvalidArgumentError(`the output is given twice (-o/--out '${opts.out}' and --output_path '${opts.output_path}'); give it once`)
      const inputs = [...(opts.imagePath ?? []), ...(opts.image_path ?? [])]
      const out = opts.out ?? opts.output_path
      // TILESWARM_PEER names the usual swarm; --local still means here.
      if (opts.local === true && command.getOptionValueSource('peer') === 'env') delete opts.peer
      if (opts.local === true && opts.peer !== undefined) throw new InvalidArgumentError('give --local or --peer, not both')
      if (opts.local !== true && opts.peer === undefined) {
        throw new InvalidArgumentError('submit needs --local (process here) or --peer <multiaddr> (process on a swarm)')
      }
      // Interrupted: the partial outputs go with us; finished ones stay (--skip-existing resumes).
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        process.on(signal, () => {
          // Files being written as the signal came are waited for (briefly), so that what is said written is what is on disk.
          void stopWriting().then(() => {
            removePartials()
            onInterrupt?.()
            process.exit(130)
          })
        })
      }
      if (await isBatchInput(inputs)) {
        await submitBatchCommand(opts, inputs, out)
        return
      }
      if (inputs.length === 1 && await stat(inputs[0]!).then(() => false, () => true)) throw new InvalidParameterError(`cannot read ${inputs[0]}: no such file or folder`)
      if (opts.recursive === true) throw new InvalidArgumentError(`--recursive is for a folder; ${inputs[0]} is a file`)
      const flags: SubmitFlags = { ...opts, imagePath: inputs[0], out }
      const request = requestFromFlags(flags)
      if (opts.format !== undefined && opts.format !== request.format) throw new InvalidArgumentError(`--format ${opts.format} and the output's extension (${request.output}) disagree; give one`)
      if (opts.skipExisting === true && await stat(request.output).then(() => true, () => false)) {
        process.stderr.write(`skipped: ${request.output} exists (--skip-existing)\n`)
        return
      }
      if (opts.peer !== undefined) {
        const done = await submitToSwarm(request, { ...await swarmOptions(opts, opts.peer), onEvent: progressReporter(opts.json === true ? 'json' : process.stderr.isTTY ? 'tty' : 'plain') })
        if (opts.json !== true) {
          const peers = Object.entries(done.tilesByPeer).map(([id, n]) => `${shortId(id)}: ${n}`).join(', ')
          process.stdout.write(`wrote ${done.output} (${done.width}x${done.height}, ${done.bytes} bytes) in ${(done.ms / 1000).toFixed(2)} s; tiles by peer: ${peers}\n`)
          if (done.verify !== undefined) process.stdout.write(`${verifyResultText(done.verify, Object.values(done.tilesByPeer).reduce((a, b) => a + b, 0))}\n`)
        }
        return
      }
      const emit = (event: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(event) + '\n') }
      const result = await runLocal(request, {
        maxPixels: opts.maxPixels,
        maxUploadBytes: opts.maxUploadBytes,
        threads: opts.threads,
        log: line => opts.json === true ? emit({ event: 'log', message: line }) : process.stderr.write(line + '\n'),
      })
      if (opts.json === true) emit({ event: 'done', output: request.output, ...result })
      else process.stdout.write(`wrote ${request.output} (${result.width}x${result.height}, ${result.bytes} bytes) in ${(result.ms / 1000).toFixed(2)} s\n`)
    })
  return fromEnvironment(command, ['peer', 'swarm-key'])
}

/** How submit reaches the swarm, from its flags: one image or a batch alike. */
async function swarmOptions (opts: SubmitCliOptions, peer: string[]): Promise<SwarmSubmitOptions> {
  return {
    peer,
    swarmKey: opts.swarmKey !== undefined ? await readSwarmKey(opts.swarmKey) : undefined,
    privateKey: opts.dataDir !== undefined ? await loadOrCreateKey(opts.dataDir) : undefined,
    tileSize: opts.tileSize,
    ...(opts.verify !== undefined ? { verify: opts.verify } : {}),
    dialTimeoutMs: opts.connectTimeoutMs,
    maxUploadBytes: opts.maxUploadBytes,
  }
}

/** A batch: many images, one job; a summary at the end, and exit status 3 if any image failed. */
async function submitBatchCommand (opts: SubmitCliOptions, inputs: string[], out: string | undefined): Promise<void> {
  const steps = pipelineFromFlags({ ...opts, imagePath: undefined })
  if (out === undefined) throw new InvalidParameterError('Expected where a batch goes: --out <folder> (the input tree mirrored) or --out <file.zip>')
  if (formatFromPath(out) !== undefined) throw new InvalidParameterError(`a batch of images goes to a folder or a .zip, not to ${out}`)
  if (opts.skipExisting === true && out.toLowerCase().endsWith('.zip')) throw new InvalidParameterError('--skip-existing needs a folder output: a .zip is written whole at the end')
  const plan = await planBatch(inputs, out, { recursive: opts.recursive === true, ...(opts.format !== undefined ? { format: opts.format } : {}) })
  const request = { plan, steps, quality: parseQuality(opts.quality), skipExisting: opts.skipExisting === true }
  const report = batchReporter(opts.json === true ? 'json' : process.stderr.isTTY ? 'tty' : 'plain')
  let written = 0
  let total = plan.items.length
  const onBatchEvent = (event: BatchEvent): void => {
    if (event.event === 'image') written++
    if (event.event === 'batch') total = event.images
    report(event)
  }
  // Said on Ctrl-C: how far it got, and how to go on.
  onInterrupt = () => {
    const zip = plan.target.kind === 'zip'
    const message = zip
      ? `interrupted: ${out} is not written (a .zip is written whole at the end; a folder keeps what is done)`
      : `interrupted: ${written} of ${total} images written to ${out}; run the same command with --skip-existing to do the rest`
    if (opts.json === true) process.stdout.write(JSON.stringify({ event: 'interrupted', written, total, message }) + '\n')
    else process.stderr.write(`\n${message}\n`)
  }
  const summary = opts.peer !== undefined
    ? await submitBatch(request, { ...await swarmOptions(opts, opts.peer), tileAboveMp: opts.tileAboveMp, onBatchEvent })
    : await runLocalBatch(request, { maxPixels: opts.maxPixels, maxUploadBytes: opts.maxUploadBytes, threads: opts.threads, onBatchEvent })
  if (opts.json !== true) {
    const seconds = summary.ms / 1000
    const rate = seconds > 0 ? ` (${(summary.done / seconds).toFixed(2)} images/s, ${(summary.megapixels / seconds).toFixed(1)} MP/s)` : ''
    process.stdout.write(`batch: ${summary.done} done, ${summary.skipped} skipped, ${summary.failures.length} failed in ${seconds.toFixed(2)} s${rate}; outputs in ${out}\n`)
    for (const f of summary.failures) process.stdout.write(`failed: ${f.input}: ${f.message}\n`)
  }
  if (summary.failures.length > 0) process.exitCode = BATCH_INCOMPLETE_EXIT
}

export function buildProgram (compute: PeerCompute = {}): Command {
  const program = new Command('tileswarm')
    .description('A peer-to-peer image processing swarm. Run a peer on every machine (tileswarm peer --help lists its flags); submit images to any of them (tileswarm submit --help).')
    .version(VERSION)
    .showHelpAfterError('(add --help for usage)')
  program.addCommand(peerCommand(compute), { isDefault: true })
  program.addCommand(submitCommand())
  program.addCommand(fromEnvironment(new Command('status')
    .description('how one peer sees the swarm: its peers (slots, uptime, work done, last seen) and the jobs it coordinates or has heard of')
    .requiredOption('--peer <multiaddr>', 'the peer to ask (any of its addresses, with /p2p/<id>); repeat it, and the first that answers is asked', collectList)
    .option('--json', 'the status as one JSON object')
    .option('--swarm-key <file>', 'the private swarm\'s key')
    .option('--connect-timeout-ms <ms>', 'give up on an unreachable peer after this long', integerOption('--connect-timeout-ms', 100, 600_000), 10_000)
    .option('--debug', 'stack traces on errors')
    .action(async (opts: { peer: string[], json?: boolean, swarmKey?: string, connectTimeoutMs: number, debug?: boolean }) => {
      debug = opts.debug === true
      json = opts.json === true
      for (const addr of opts.peer) parsePeerAddress(addr, '--peer')
      const { fetchStatus, formatStatus } = await import('../swarm/status.ts')
      const swarmKey = opts.swarmKey !== undefined ? await readSwarmKey(opts.swarmKey) : undefined
      const node = await createClientNode({ dialTimeoutMs: opts.connectTimeoutMs, swarmKey })
      try {
        let status: Awaited<ReturnType<typeof fetchStatus>> | undefined
        let firstError: unknown
        for (const addr of opts.peer) {
          try {
            status = await fetchStatus(node, addr, { dialTimeoutMs: opts.connectTimeoutMs, swarmKey, detail: true })
            break
          } catch (err) {
            firstError ??= err
          }
        }
        if (status === undefined) throw firstError
        process.stdout.write((opts.json === true ? JSON.stringify(status, null, 2) : formatStatus(status)) + '\n')
      } finally {
        await node.stop()
      }
    }), ['peer', 'swarm-key']))
  program.addCommand(new Command('http-token')
    .description('print the web page\'s token that peers of a private swarm derive from its key (when they serve the page beyond loopback without --http-token)')
    .requiredOption('--swarm-key <file>', 'the swarm\'s key')
    .action(async (opts: { swarmKey: string }) => {
      const { tokenFromSwarmKey } = await import('../web/server.ts')
      process.stdout.write(`${tokenFromSwarmKey(await readSwarmKey(opts.swarmKey))}\n`)
    }))
  program.addCommand(new Command('keygen')
    .description('write a new pre-shared key for a private swarm; give the same file to every peer and client')
    .requiredOption('--out <file>', 'where to write it (mode 600)')
    .option('--force', 'replace an existing file')
    .action(async (opts: { out: string, force?: boolean }) => {
      await writeSwarmKey(opts.out, opts.force === true)
      process.stdout.write(`wrote a swarm key to ${opts.out}; start every peer and submit with --swarm-key ${opts.out}\n`)
    }))
  program.addCommand(new Command('id')
    .description('print the peer id kept in a data dir (made if missing): what --allow-submit lists')
    .option('--data-dir <dir>', 'the data dir', join(homedir(), '.tileswarm'))
    .action(async (opts: { dataDir: string }) => {
      process.stdout.write(`${peerIdFromPrivateKey(await loadOrCreateKey(opts.dataDir)).toString()}\n`)
    }))
  // Usage errors come back here (not straight to exit), so --json can report them as an event.
  for (const command of [program, ...program.commands]) {
    command.exitOverride().configureOutput({ outputError: (str, write) => { if (!json) write(`tileswarm: ${plainUsageError(str)}`) } })
  }
  return program
}

/**
 * Mistakes commander would answer with a bare 'unknown option': a misspelt
 * command (taken as an argument of the default peer command), or submit's
 * flags given to the peer command because 'submit' was left out.
 */
function misuse (program: Command, args: string[]): string | undefined {
  const commands = program.commands.map(c => c.name())
  const first = args[0]
  if (first === undefined) return undefined
  if (!first.startsWith('-') && !commands.includes(first) && first !== 'help') {
    return `unknown command '${first}'${didYouMean(first, commands)}; commands: ${commands.join(', ')}`
  }
  if (commands.includes(first) && first !== 'peer') return undefined
  const peerFlags = new Set(program.commands.find(c => c.name() === 'peer')!.options.flatMap(o => [o.long, o.short]).filter(f => f !== undefined))
  const submitFlags = new Set(program.commands.find(c => c.name() === 'submit')!.options.flatMap(o => [o.long, o.short]).filter(f => f !== undefined))
  const flag = args.map(a => a.split('=')[0]!).find(a => a.startsWith('-') && !peerFlags.has(a) && submitFlags.has(a))
  if (flag !== undefined) return `${flag} is an option of submit, not of a peer: run 'tileswarm submit ${args.filter(a => a !== 'peer').join(' ')}'`
  return undefined
}

/** A check that names a flag whose value came from its TILESWARM_* variable says so. */
function fromVariable (program: Command, message: string): string {
  for (const command of [program, ...program.commands]) {
    for (const option of command.options) {
      if (option.long === undefined || option.envVar === undefined || command.getOptionValueSource(option.attributeName()) !== 'env') continue
      const at = new RegExp(`${option.long}(?![\\w-])`)
      if (at.test(message) && !message.includes(option.envVar)) return message.replace(at, `${option.long} (${option.envVar})`)
    }
  }
  return message
}

export async function main (argv: string[], compute: PeerCompute = {}): Promise<void> {
  debug = argv.includes('--debug')
  json = argv.includes('--json')
  const program = buildProgram(compute)
  try {
    const wrong = misuse(program, argv.slice(2))
    if (wrong !== undefined) throw new InvalidArgumentError(wrong)
    await program.parseAsync(argv)
  } catch (err) {
    if (err instanceof Error && !(err instanceof CommanderError)) err.message = fromVariable(program, err.message)
    // Ours (thrown by a check or an action), not yet printed; commander's own come as CommanderError.
    if (err instanceof InvalidArgumentError) fail(new InvalidParameterError(err.message))
    if (err instanceof CommanderError) {
      // Help and version end here too, with 0; a usage error was printed already, except under --json.
      if (err.exitCode === 0) process.exit(0)
      if (json) fail(new InvalidParameterError(plainUsageError(err.message)))
      process.exit(err.exitCode)
    }
    fail(err)
  }
}
