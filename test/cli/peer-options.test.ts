import test from 'ava'
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { Command, CommanderError } from 'commander'
import { DEFAULT_INPUT_MEMORY_BYTES, DEFAULT_LEASE_MS, DEFAULT_LISTEN_ADDRESS, DEFAULT_MAX_JOBS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_TILES, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_RESULT_CACHE_BYTES, DEFAULT_RESULT_CACHE_MS, DEFAULT_SCALE_COOLDOWN_S, DEFAULT_SCALE_HOOK_TIMEOUT_S, DEFAULT_SCALE_IN_AFTER_S, DEFAULT_SCALE_MAX, DEFAULT_SCALE_OUT_AFTER_S, DEFAULT_MIN_UPLOAD_BYTES_PER_S, DEFAULT_UPLOAD_TIMEOUT_MS, UPLOAD_GRACE_MS } from '../../src/common/defaults.ts'
import { fromEnvironment } from '../../src/cli/env-options.ts'
import { DEFAULT_DATA_DIR, withPeerFlags, type PeerFlags } from '../../src/cli/peer-flags.ts'
import { peerOptionsFromFlags } from '../../src/cli/peer-options.ts'
import { plainUsageError } from '../../src/cli/usage.ts'

const PEER_ID = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
const context = { flagVariables: ['TILESWARM_DATA_DIR', 'TILESWARM_SLOTS'] }

/** The peer command's flags as the CLI parses them, variables included. */
function parse (args: string[]): PeerFlags {
  const command = fromEnvironment(withPeerFlags(new Command('peer'))).exitOverride().configureOutput({ writeErr: () => {} })
  command.parse(args, { from: 'user' })
  return command.opts<PeerFlags>()
}

const options = (args: string[]) => peerOptionsFromFlags(parse(args), context)

/** What a bad flag is refused with, as the CLI says it. */
function refusal (args: string[]): string {
  try {
    options(args)
  } catch (err) {
    return err instanceof CommanderError ? plainUsageError(err.message) : (err as Error).message
  }
  throw new Error(`${args.join(' ')} was taken`)
}

test('no flags: the defaults, no scale hooks, no tile size (chosen per job)', t => {
  t.deepEqual(options([]), {
    listen: [DEFAULT_LISTEN_ADDRESS],
    bootstrap: [],
    announce: undefined,
    dataDir: DEFAULT_DATA_DIR,
    slots: availableParallelism(),
    spread: 'auto',
    leaseMs: DEFAULT_LEASE_MS,
    maxPixels: DEFAULT_MAX_PIXELS,
    maxUploadBytes: DEFAULT_MAX_UPLOAD_BYTES,
    maxJobs: DEFAULT_MAX_JOBS,
    maxTiles: DEFAULT_MAX_TILES,
    resultCacheBytes: DEFAULT_RESULT_CACHE_BYTES,
    inputMemoryBytes: DEFAULT_INPUT_MEMORY_BYTES,
    resultCacheMs: DEFAULT_RESULT_CACHE_MS,
    uploadPace: { minBytesPerS: DEFAULT_MIN_UPLOAD_BYTES_PER_S, graceMs: UPLOAD_GRACE_MS, timeoutMs: DEFAULT_UPLOAD_TIMEOUT_MS },
  })
})

test('each flag sets its option, in the peer\'s units', t => {
  const bootstrap = `/ip4/10.0.0.5/tcp/4001/p2p/${PEER_ID}`
  const cases: Array<[string[], Record<string, unknown>]> = [
    [['--listen', '/ip4/127.0.0.1/tcp/0', '--listen', '/ip6/::1/tcp/0'], { listen: ['/ip4/127.0.0.1/tcp/0', '/ip6/::1/tcp/0'] }],
    [['--listen', '/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2'], { listen: ['/ip4/127.0.0.1/tcp/1', '/ip4/127.0.0.1/tcp/2'] }],
    [['--bootstrap', bootstrap], { bootstrap: [bootstrap] }],
    [['--announce', '/ip4/198.18.0.9/tcp/4001'], { announce: ['/ip4/198.18.0.9/tcp/4001'] }],
    [['--data-dir', '/tmp/d'], { dataDir: '/tmp/d' }],
    [['--slots', '3'], { slots: 3 }],
    [['--tile-size', '512'], { tileSize: 512 }],
    [['--spread', 'always'], { spread: 'always' }],
    [['--lease-ms', '2500'], { leaseMs: 2500 }],
    [['--max-pixels', '1000'], { maxPixels: 1000 }],
    [['--max-upload-bytes', '2000'], { maxUploadBytes: 2000 }],
    [['--max-jobs', '2'], { maxJobs: 2 }],
    [['--max-tiles', '50'], { maxTiles: 50 }],
    [['--result-cache-mb', '3'], { resultCacheBytes: 3 * 1024 * 1024 }],
    [['--input-memory-mb', '5'], { inputMemoryBytes: 5 * 1024 * 1024 }],
    [['--result-cache-s', '7'], { resultCacheMs: 7000 }],
    [['--scaled-by', PEER_ID], { scaledBy: PEER_ID }],
    [['--min-upload-kbps', '8', '--upload-timeout', '60'], { uploadPace: { minBytesPerS: 8 * 1024, graceMs: UPLOAD_GRACE_MS, timeoutMs: 60_000 } }],
    [['--min-upload-kbps', '0'], { uploadPace: { minBytesPerS: 0, graceMs: UPLOAD_GRACE_MS, timeoutMs: DEFAULT_UPLOAD_TIMEOUT_MS } }],
  ]
  for (const [args, expected] of cases) t.like(options(args), expected, args.join(' '))
})

test('flags that are not the peer\'s options leave them as they were', t => {
  const plain = options([])
  for (const args of [['--http', 'off'], ['--web-header-timeout', '5'], ['--web-results-mb', '100'], ['--http-token', 'a'.repeat(16)], ['--log-level', 'warn'], ['--log-format', 'json'], ['--swarm-key', 'k'], ['--allow-submit', PEER_ID], ['--debug']]) {
    t.deepEqual(options(args), plain, args.join(' '))
  }
})

test('scale hooks: only with --scale-out or --scale-in, their times in ms, the key file made absolute, this peer\'s variables kept from the hooks', t => {
  t.is(options(['--scale-max', '9']).scale, undefined)
  t.deepEqual(options(['--scale-out', 'up.sh']).scale, {
    out: 'up.sh',
    outAfterMs: DEFAULT_SCALE_OUT_AFTER_S * 1000,
    inAfterMs: DEFAULT_SCALE_IN_AFTER_S * 1000,
    max: DEFAULT_SCALE_MAX,
    cooldownMs: DEFAULT_SCALE_COOLDOWN_S * 1000,
    hookTimeoutMs: DEFAULT_SCALE_HOOK_TIMEOUT_S * 1000,
    dropEnv: context.flagVariables,
  })
  t.deepEqual(options(['--scale-in', 'down.sh', '--scale-out-after', '5', '--scale-in-after', '6', '--scale-max', '7', '--scale-cooldown', '8', '--scale-hook-timeout', '9', '--swarm-key', 'swarm.key']).scale, {
    in: 'down.sh',
    outAfterMs: 5000,
    inAfterMs: 6000,
    max: 7,
    cooldownMs: 8000,
    hookTimeoutMs: 9000,
    swarmKeyPath: resolve('swarm.key'),
    dropEnv: context.flagVariables,
  })
})

test('bad values are refused with the flag\'s name', t => {
  t.is(refusal(['--slots', '0']), 'Expected integer between 1 and 1024 for --slots but received \'0\'')
  t.is(refusal(['--scale-out-after', '0']), 'Expected integer between 1 and 86400 for --scale-out-after but received \'0\'')
  t.is(refusal(['--tile-size', '8']), 'Expected integer between 16 and 4096 for --tile-size but received \'8\'')
  t.is(refusal(['--spread', 'never']), '--spread \'never\' is not one of auto, always')
  t.is(refusal(['--log-level', 'verbose']), '--log-level \'verbose\' is not one of debug, info, warn, error')
  t.regex(refusal(['--listen', 'garbage']), /^Expected a multiaddr for --listen, like \/ip4\/0\.0\.0\.0\/tcp\/4001, but received 'garbage'/)
  t.regex(refusal(['--listen', '/ip4/127.0.0.1/udp/4305']), /--listen \/ip4\/127\.0\.0\.1\/udp\/4305 has no \/tcp\/ port/)
  t.regex(refusal(['--bootstrap', 'garbage']), /--bootstrap/)
  t.regex(refusal(['--announce', `/ip4/198.18.0.9/tcp/4001/p2p/${PEER_ID}`]), /--announce .*: leave out \/p2p\//)
  t.is(refusal(['--scaled-by', 'me']), '--scaled-by takes a peer id (12D3KooW...), not \'me\'')
})

test('a flag may come from its TILESWARM_* variable; one given wins; a bad value names the variable', t => {
  const saved = { slots: process.env.TILESWARM_SLOTS, spread: process.env.TILESWARM_SPREAD }
  try {
    process.env.TILESWARM_SLOTS = '5'
    process.env.TILESWARM_SPREAD = 'always'
    t.like(options([]), { slots: 5, spread: 'always' })
    t.like(options(['--slots', '2']), { slots: 2, spread: 'always' })
    process.env.TILESWARM_SLOTS = '0'
    t.is(refusal([]), 'TILESWARM_SLOTS=\'0\': Expected integer between 1 and 1024 for --slots but received \'0\'')
    process.env.TILESWARM_SLOTS = ''
    t.like(options([]), { slots: availableParallelism() }, 'VAR= means unset')
  } finally {
    for (const [name, value] of [['TILESWARM_SLOTS', saved.slots], ['TILESWARM_SPREAD', saved.spread]] as const) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  }
})
