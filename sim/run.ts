/**
 * npm run sim -- --peers 32 --tiles 4000 --scenario churn --seed 1
 *
 * Many in-process peers, one job, injected faults, simulated compute. Prints a
 * summary and checks the invariants: job complete, output exact, every tile
 * placed exactly once, no dead peer's lease outliving its deadline.
 */
import { Command } from 'commander'
import { integerOption } from '../src/cli-args.ts'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeImage, parseOps, resolvePipeline, runPipeline } from '../src/imaging/index.ts'
import type { JobCoordinator } from '../src/job/coordinator.ts'
import { submitToSwarm } from '../src/client/submit.ts'
import { Cluster } from './cluster.ts'
import { wireTraffic } from './faults.ts'
import { tuneHeapForTiles } from '../src/runtime.ts'
import { noiseImage, prng } from './model.ts'
import { SCENARIOS } from './scenarios.ts'


const program = new Command('sim')
  .description('run one job on many in-process peers with injected faults')
  .option('--peers <n>', 'peers, the coordinator included', integerOption('--peers', 1, 128), 8)
  .option('--tiles <n>', 'about this many tiles (the image is sized to fit)', integerOption('--tiles', 1, 50_000), 1000)
  .option('--scenario <name>', `one of: ${Object.keys(SCENARIOS).join(', ')}`, 'baseline')
  .option('--seed <n>', 'seeds the image and every random choice', integerOption('--seed', 0, 2 ** 31), 1)
  .option('--tile-size <px>', 'tile edge', integerOption('--tile-size', 16, 1024), 32)
  .option('--lease-ms <ms>', 'lease length', integerOption('--lease-ms', 100, 60_000), 1000)
  .option('--ns-per-pixel <ns>', 'simulated compute per output pixel', integerOption('--ns-per-pixel', 0, 1e7), 2000)
  .option('--ops <pipeline>', 'the real (cheap) pipeline each tile runs', 'invert')
  .option('--time-limit-s <s>', 'the run fails if the job is not done by then', integerOption('--time-limit-s', 1, 3600), 180)
  .option('--json', 'print the summary as JSON')
  .option('--log', 'print every peer\'s log lines to stderr')
  .parse()

// In-process peers get the tuning the peer binary has.
tuneHeapForTiles()

const opts = program.opts<{ peers: number, tiles: number, scenario: string, seed: number, tileSize: number, leaseMs: number, nsPerPixel: number, ops: string, timeLimitS: number, json?: boolean, log?: boolean }>()
const scenario = SCENARIOS[opts.scenario]
if (scenario === undefined) program.error(`unknown scenario '${opts.scenario}'; one of: ${Object.keys(SCENARIOS).join(', ')}`)

const log = (line: string): void => { if (opts.json !== true) console.log(line) }
const cols = Math.ceil(Math.sqrt(opts.tiles))
const rows = Math.ceil(opts.tiles / cols)
const width = cols * opts.tileSize - Math.floor(opts.tileSize / 3)
const height = rows * opts.tileSize - Math.floor(opts.tileSize / 5)
log(`scenario ${opts.scenario}: ${scenario.description}`)
log(`${opts.peers} peers, ${cols * rows} tiles of ${opts.tileSize} px (${width}x${height}), lease ${opts.leaseMs} ms, ${opts.nsPerPixel} ns/pixel simulated, seed ${opts.seed}; time limit ${opts.timeLimitS} s`)

const limit = setTimeout(() => {
  console.error(`FAILED: not done within the time limit of ${opts.timeLimitS} s`)
  process.exit(1)
}, opts.timeLimitS * 1000)
limit.unref()

const dir = await mkdtemp(join(tmpdir(), 'tileswarm-sim-'))
const image = noiseImage(width, height, { channels: 3, depth: 8 }, opts.seed + 1)
const input = join(dir, 'input.png')
await writeFile(input, await encodeImage(image, { format: 'png' }))
const steps = resolvePipeline(parseOps(opts.ops))
const reference = await encodeImage(await runPipeline(image, steps), { format: 'png' })

const random = prng(opts.seed)
let peerNo = 0
const peerLog = opts.log === true
  ? (): ((line: string) => void) => { const name = `p${peerNo++}`; return line => { process.stderr.write(`${(performance.now() / 1000).toFixed(3)} ${name} ${line}\n`) } }
  : undefined
// Hellos every 60 s: in one process, 64 peers' discovery (every hello checked by
// every peer, up to 8 new connections each) would cost more CPU than the job.
const cluster = await Cluster.start(opts.peers, { ...(peerLog !== undefined ? { logFor: peerLog } : {}), tileSize: opts.tileSize, leaseMs: opts.leaseMs, nsPerPixel: opts.nsPerPixel, heartbeatMs: 200, announceMs: 500, helloMs: 60_000 })
cluster.seed(random)
const coordinator = cluster.peers[0]!
/** Placements by phase and tile: a job in phases places each tile once per phase. */
let placements = new Map<string, number>()
/** The job's current coordinator; an earlier one, if the job was resumed, and how far it had got. */
let job: JobCoordinator | undefined
let earlier: { completed: number } | undefined
let worstOvershootMs = 0
const reachedWaiters: Array<{ fraction: number, resolve: () => void }> = []
let faultsAt: number | undefined
// Any peer may end up coordinating: a resumed job moves to another.
for (const peer of cluster.peers) {
  peer.events.addEventListener('job', evt => {
    if (job !== undefined) earlier = { completed: job.progress.done }
    job = (evt as CustomEvent<JobCoordinator>).detail
    placements = new Map()
    const j = job
    j.on('placed', tile => {
      const key = `${j.phase}/${tile}`
      placements.set(key, (placements.get(key) ?? 0) + 1)
      const done = j.progress.done / j.progress.total
      for (const w of reachedWaiters.filter(w => done >= w.fraction)) { reachedWaiters.splice(reachedWaiters.indexOf(w), 1); w.resolve() }
    })
  })
}
// Dead peers' leases must not outlive their deadlines (beyond event-loop lag).
const deadIds = (): Set<string> => new Set([...cluster.fate].filter(([, f]) => f !== 'alive').map(([p]) => p.peerId))
const monitor = setInterval(() => {
  if (job === undefined) return
  const now = performance.now()
  const dead = deadIds()
  for (const lease of job.leases.activeLeases()) {
    if (dead.has(lease.peer)) worstOvershootMs = Math.max(worstOvershootMs, now - lease.deadline)
  }
}, 20)

let resolveOver!: () => void
const over = new Promise<void>(resolve => { resolveOver = resolve })
const started = performance.now()
const wire0 = { ...wireTraffic }
const published = (): number => [...cluster.published.values()].reduce((a, b) => a + b, 0)
const gossip0 = published()
const driver = scenario.run({
  cluster,
  coordinator,
  random,
  leaseMs: opts.leaseMs,
  reached: async fraction => { await new Promise<void>(resolve => { reachedWaiters.push({ fraction, resolve }) }) },
  over,
  log,
  faultsAt: ms => { faultsAt ??= ms },
}).catch(err => { log(`scenario driver failed: ${(err as Error).message}`) })

let failures: string[] = []
let done: Awaited<ReturnType<typeof submitToSwarm>> | undefined
try {
  done = await submitToSwarm({ steps, input, output: join(dir, 'out.png'), format: 'png', quality: 90 }, { peer: coordinator.addrs()[0]!, tileSize: opts.tileSize, idleTimeoutMs: opts.timeLimitS * 1000 })
} catch (err) {
  failures.push(`job failed: ${(err as Error).message}`)
}
const ended = performance.now()
resolveOver()
for (const w of reachedWaiters.splice(0)) w.resolve()
await driver
clearInterval(monitor)

// Tiles of every phase.
const tiles = job?.progress.total ?? 0
const stats = job?.stats
if (done !== undefined) {
  const output = await readFile(join(dir, 'out.png'))
  if (!output.equals(reference)) failures.push('output differs from the local reference')
}
if (placements.size !== tiles) failures.push(`${placements.size} of ${tiles} tiles placed`)
const twice = [...placements.values()].filter(n => n !== 1).length
if (twice > 0) failures.push(`${twice} tiles placed more than once`)
const overshootLimitMs = 1000
if (worstOvershootMs > overshootLimitMs) failures.push(`a dead peer's lease outlived its deadline by ${worstOvershootMs.toFixed(0)} ms`)
failures = failures.filter(Boolean)

const seconds = (ended - started) / 1000
const gossip = published() - gossip0
const summary = {
  scenario: opts.scenario,
  seed: opts.seed,
  peers: opts.peers,
  tiles,
  seconds: Number(seconds.toFixed(3)),
  tilesPerSecond: Number((tiles / seconds).toFixed(1)),
  leases: stats === undefined ? undefined : { granted: stats.granted, expired: stats.expired, released: stats.released, renewed: stats.renewed, reclaimed: stats.reclaimed, duplicateResults: stats.duplicates },
  duplicateWorkTiles: stats === undefined ? undefined : stats.reclaimed,
  speculativeCopies: stats?.speculated,
  speculativeWins: stats?.speculativeWins,
  extraWorkShare: stats === undefined || tiles === 0 ? undefined : Number((stats.speculated / tiles).toFixed(4)),
  resumed: earlier === undefined || stats === undefined ? undefined : { finishedBefore: earlier.completed, recovered: stats.recovered, recomputed: Math.max(0, earlier.completed - stats.recovered) },
  resultCacheBytes: [...cluster.peers].reduce((n, p) => n + p.cache.stats.bytes, 0),
  wireMessagesPerTile: Number(((wireTraffic.messages - wire0.messages) / Math.max(1, tiles)).toFixed(2)),
  wireBytesPerTile: Math.round((wireTraffic.bytes - wire0.bytes) / Math.max(1, tiles)),
  gossipMessages: gossip,
  recoveryMsAfterFaults: faultsAt === undefined ? undefined : Math.round(ended - faultsAt),
  recoveryMsPastLease: faultsAt === undefined ? undefined : Math.round(ended - faultsAt - opts.leaseMs),
  worstDeadLeaseOvershootMs: Math.round(Math.max(0, worstOvershootMs)),
  tilesByPeer: done?.tilesByPeer,
  invariants: failures.length === 0 ? 'ok' : failures,
}
if (opts.json === true) {
  console.log(JSON.stringify(summary))
} else {
  log(`done in ${summary.seconds} s: ${summary.tilesPerSecond} tiles/s`)
  log(`leases: ${JSON.stringify(summary.leases)}`)
  log(`duplicate work: ${summary.duplicateWorkTiles} tiles granted again, ${summary.leases?.duplicateResults} late results dropped`)
  log(`speculation: ${summary.speculativeCopies} copies of straggling tiles (${((summary.extraWorkShare ?? 0) * 100).toFixed(1)}% extra work), ${summary.speculativeWins} finished first`)
  if (summary.resumed !== undefined) log(`resumed after losing the coordinator: ${summary.resumed.recovered} of the ${summary.resumed.finishedBefore} tiles finished before were recovered, ${summary.resumed.recomputed} computed again`)
  log(`results kept by workers for a later coordinator: ${(summary.resultCacheBytes / 1024 / 1024).toFixed(1)} MB at the end`)
  log(`wire: ${summary.wireMessagesPerTile} messages and ${summary.wireBytesPerTile} bytes per tile sent by peers (the result included); ${gossip} gossip messages`)
  if (faultsAt !== undefined) log(`after the faults: done in ${summary.recoveryMsAfterFaults} ms (${summary.recoveryMsPastLease} ms past the ${opts.leaseMs} ms lease)`)
  log(`worst overshoot of a dead peer's lease past its deadline: ${summary.worstDeadLeaseOvershootMs} ms`)
  log(`invariants: ${failures.length === 0 ? 'ok (complete, exact, every tile placed once, no dead lease past its deadline)' : 'FAILED\n  ' + failures.join('\n  ')}`)
}
await cluster.stop()
await rm(dir, { recursive: true, force: true })
process.exit(failures.length === 0 ? 0 : 1)
