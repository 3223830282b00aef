import { availableParallelism, homedir } from 'node:os'
import { join } from 'node:path'
import { type Command, Option } from 'commander'
import { collectList, integerOption } from './args.ts'
import { coordinatingOptions, type CoordinatingFlags } from './coordinating.ts'
import { DEFAULT_HTTP_ADDRESS, DEFAULT_INPUT_MEMORY_BYTES, DEFAULT_MIN_UPLOAD_BYTES_PER_S, DEFAULT_UPLOAD_TIMEOUT_MS, DEFAULT_WEB_HEADER_TIMEOUT_MS, DEFAULT_WEB_RESULTS_BYTES, UPLOAD_GRACE_MS, DEFAULT_LISTEN_ADDRESS, DEFAULT_RESULT_CACHE_BYTES, DEFAULT_RESULT_CACHE_MS, DEFAULT_SCALE_COOLDOWN_S, DEFAULT_SCALE_HOOK_TIMEOUT_S, DEFAULT_SCALE_IN_AFTER_S, DEFAULT_SCALE_MAX, DEFAULT_SCALE_OUT_AFTER_S, MAX_SLOTS } from '../common/defaults.ts'
import { LOG_FORMATS, LOG_LEVELS, type LogLevel } from '../common/log.ts'
import type { PaceRule } from '../common/upload-pace.ts'

/** The flags' megabytes. */
export const MB_BYTES = 1024 * 1024
/** The longest a flag in seconds may say. */
const DAY_S = 86_400

/** The peer command's flags, as commander parses them (defaults filled in). */
export interface PeerFlags extends CoordinatingFlags {
  swarmKey?: string
  allowSubmit?: string[]
  allowSubmitFile?: string
  allowPriority?: string[]
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
  webHeaderTimeout: number
  webResultsMb: number
  minUploadKbps: number
  uploadTimeout: number
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

/** The data dir a peer, and `tileswarm id`, keep the identity key in unless told. */
export const DEFAULT_DATA_DIR = join(homedir(), '.tileswarm')

/** Adds the peer's flags to `command`, in the order its help lists them. */
export function withPeerFlags (command: Command): Command {
  return coordinatingOptions(command
    .option('--listen <multiaddr>', `address to listen on; repeatable (default ${DEFAULT_LISTEN_ADDRESS}; /tcp/0 picks a free port)`, collectList)
    .option('--bootstrap <address>', 'a peer of the swarm to join through: host:port/<peer id> or a multiaddr with /p2p/<id> (tileswarm init prints it), so the right peer is checked; repeatable', collectList)
    .option('--announce <multiaddr>', 'the address other peers should dial, told instead of the listening ones (a VM behind NAT: its public address); repeatable', collectList)
    .option('--http <host:port>', 'serve the web page, dashboard, /metrics and /healthz here; off for none. Off loopback it needs a token', DEFAULT_HTTP_ADDRESS)
    .option('--http-token <secret>', 'the token the web server asks for (16 characters at least); needed off loopback, where it defaults to one derived from --swarm-key (tileswarm http-token), unless --allow-submit is given')
    .option('--web-header-timeout <s>', 'a web request whose headers take longer is answered 408 and closed (idle and trickling connections)', integerOption('--web-header-timeout', 1, 3600), DEFAULT_WEB_HEADER_TIMEOUT_MS / 1000)
    .option('--web-results-mb <n>', 'the web page\'s results kept on disk, at most: each is kept an hour unless this runs out, and then the oldest go first (one address keeps half of it and 64 jobs at most)', integerOption('--web-results-mb', 1, 10_000_000), DEFAULT_WEB_RESULTS_BYTES / MB_BYTES)
    .option('--min-upload-kbps <n>', `uploads (the web page's and submits over the swarm) must average this many kilobytes a second after their first ${UPLOAD_GRACE_MS / 1000} s, or are dropped (408 on the page) and free their place; 0 for no floor`, integerOption('--min-upload-kbps', 0, 10_000_000), DEFAULT_MIN_UPLOAD_BYTES_PER_S / 1024)
    .option('--upload-timeout <s>', 'an upload (the web page\'s or a submit\'s) still coming after this long is dropped', integerOption('--upload-timeout', 1, DAY_S), DEFAULT_UPLOAD_TIMEOUT_MS / 1000)
    .addOption(new Option('--log-level <level>', 'least important log lines shown').choices(LOG_LEVELS).default('info'))
    .addOption(new Option('--log-format <format>', 'log lines as text, or as JSON objects (one a line) for a log collector').choices(LOG_FORMATS).default('text'))
    .option('--data-dir <dir>', 'keeps the identity key, so a restarted peer keeps its peer id', DEFAULT_DATA_DIR)
    .option('--slots <n>', 'libvips threads this peer computes with (it holds up to four tiles per slot, so the next is ready)', integerOption('--slots', 1, MAX_SLOTS), availableParallelism()))
    .option('--result-cache-mb <n>', 'tile results kept for other coordinators\' jobs, so a job that loses its coordinator need not compute them again', integerOption('--result-cache-mb', 0, 1_000_000), DEFAULT_RESULT_CACHE_BYTES / MB_BYTES)
    .option('--input-memory-mb <n>', 'decoded inputs of the jobs this peer coordinates, at most (each is a whole raw image, decoded once for the whole swarm); a job past it is refused as busy, and its client tries another peer', integerOption('--input-memory-mb', 1, 10_000_000), DEFAULT_INPUT_MEMORY_BYTES / MB_BYTES)
    .option('--result-cache-s <s>', 'how long such results are kept', integerOption('--result-cache-s', 0, DAY_S), DEFAULT_RESULT_CACHE_MS / 1000)
    .option('--swarm-key <file>', 'make the swarm private: only peers and clients with this key can connect (tileswarm keygen)')
    .option('--allow-submit <peer id>', 'only these peer ids may submit jobs here; repeatable (default: anyone in the swarm)', collectList)
    .option('--allow-submit-file <file>', 'as --allow-submit, one peer id per line (# comments)')
    .option('--allow-priority <peer id|all>', 'who may submit --priority high jobs here: these peer ids (repeatable), or all; a high job from anyone else is refused (default: the peers --allow-submit names; nobody without it)', collectList)
    .option('--scale-out <command>', 'a shell command that adds peers when work waits: run when the swarm\'s backlog would take longer than --scale-out-after to drain, with TILESWARM_SCALE_COUNT (peers wanted), TILESWARM_BOOTSTRAP (this peer), TILESWARM_SCALED_BY (its id) and TILESWARM_SWARM_KEY (the key file, if any) set; e.g. "deploy/local-peers.sh up". Of the peers with one, the lowest id acts')
    .option('--scale-in <command>', 'a shell command that stops peers the scale-out hook started, once the swarm has had no backlog for --scale-in-after: TILESWARM_SCALE_PEERS names them (peer ids, space-separated); e.g. "deploy/local-peers.sh down"')
    .option('--scale-out-after <s>', 'scale out when the backlog would take longer than this to drain with the slots at hand (and has for a third of it)', integerOption('--scale-out-after', 1, DAY_S), DEFAULT_SCALE_OUT_AFTER_S)
    .option('--scale-in-after <s>', 'scale in once the swarm has had no backlog this long', integerOption('--scale-in-after', 1, DAY_S), DEFAULT_SCALE_IN_AFTER_S)
    .option('--scale-max <n>', 'peers the scale-out hook may have up (or on their way) at once', integerOption('--scale-max', 1, 10_000), DEFAULT_SCALE_MAX)
    .option('--scale-cooldown <s>', 'after a hook has run, none runs for this long: started peers take a while to join', integerOption('--scale-cooldown', 0, DAY_S), DEFAULT_SCALE_COOLDOWN_S)
    .option('--scale-hook-timeout <s>', 'a hook still running after this long is killed and reported', integerOption('--scale-hook-timeout', 1, DAY_S), DEFAULT_SCALE_HOOK_TIMEOUT_S)
    .option('--scaled-by <peer id>', 'the peer whose scale-out hook started this one (hooks set TILESWARM_SCALED_BY): said to the swarm, so that peer may stop this one when it is idle')
    .option('--debug', 'stack traces on errors')
}

/** How fast uploads must come, from --min-upload-kbps and --upload-timeout. */
export function uploadPaceFromFlags (flags: Pick<PeerFlags, 'minUploadKbps' | 'uploadTimeout'>): PaceRule {
  return { minBytesPerS: flags.minUploadKbps * 1024, graceMs: UPLOAD_GRACE_MS, timeoutMs: flags.uploadTimeout * 1000 }
}
