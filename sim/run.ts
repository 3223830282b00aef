/**
 * npm run sim -- --peers 32 --tiles 4000 --scenario churn --seed 1
 *
 * Many in-process peers, one job, injected faults, simulated compute. Prints a
 * summary and checks the invariants: job complete, output exact, every tile
 * placed exactly once, no dead peer's lease outliving its deadline.
 */
import { Command } from 'commander'
import { integerOption, verifyOption } from '../src/cli/args.ts'
import { DEFAULT_VERIFY_FLOOR, verifyText, type VerifyFigures, type VerifyLevel } from '../src/protocol/verify-level.ts'
import { InvalidArgumentError } from 'commander'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeImage, encodeImage, extract, parseOps, planTiles, resolvePipeline, runPipeline } from '../src/imaging/index.ts'
import { JobCoordinator } from '../src/job/coordinator.ts'
import type { BatchCoordinator } from '../src/job/batch.ts'
import { submitBatch } from '../src/client/batch.ts'
import { planBatch } from '../src/client/batch-plan.ts'
import { submitToSwarm } from '../src/client/submit.ts'
import { Cluster } from './cluster.ts'
import { wireTraffic } from './faults.ts'
import { tuneHeapForTiles } from '../src/common/runtime.ts'
import { noiseImage, prng } from './model.ts'
import { SCENARIOS } from './scenarios.ts'
import { runShared } from './shared.ts'

// One process stands for every peer and client here, each of which has libuv's pool of its own: with the default four
// threads, a client's file reads queued behind sixteen peers' sharp work, and a batch reached its coordinator seconds late.
// Set before the pool's first use (it is made at its first task).
process.env.UV_THREADPOOL_SIZE ??= '64'


/** Several jobs at once, with its own runner: not one job under faults like SCENARIOS. */
const SHARED = 'shared'

const program = new Command('sim')
  .description('run one job on many in-process peers with injected faults (or, with --scenario shared, several submitters\' jobs at once)')
  .option('--peers <n>', 'peers, the coordinator included (shared: 16 unless given)', integerOption('--peers', 1, 128), 8)
  .option('--tiles <n>', 'about this many tiles (the image is sized to fit; shared: the big job\'s, 600 unless given)', integerOption('--tiles', 1, 50_000), 1000)
  .option('--scenario <name>', `one of: ${[...Object.keys(SCENARIOS), SHARED].join(', ')}`, 'baseline')
  .option('--seed <n>', 'seeds the image and every random choice', integerOption('--seed', 0, 2 ** 31), 1)
  .option('--tile-size <px>', 'tile edge (shared: 64 unless given)', integerOption('--tile-size', 16, 1024), 32)
  .option('--lease-ms <ms>', 'lease length', integerOption('--lease-ms', 100, 60_000), 1000)
  .option('--ns-per-pixel <ns>', 'simulated compute per output pixel (shared: 100000 unless given)', integerOption('--ns-per-pixel', 0, 1e7), 2000)
  .option('--ops <pipeline>', 'the real (cheap) pipeline each tile runs', 'invert')
  .option('--images <n>', 'a batch of this many small images (each a whole-image task) instead of one tiled job (shared: the batch\'s, 40 unless given; 0 for none)', integerOption('--images', 0, 10_000), 0)
  .option('--verify <share|all|off>', `spot checks, as submit --verify (default ${DEFAULT_VERIFY_FLOOR})`, verifyOption, DEFAULT_VERIFY_FLOOR as VerifyLevel)
  .option('--lie-share <share>', 'the liar scenario: the share of its tiles the liar sends back wrong', shareOption, 1)
  .option('--alone-runs <n>', 'shared: each job runs alone this many times first, its time alone their median', integerOption('--alone-runs', 1, 9), 3)
  .option('--priorities <job=level,...>', 'shared: these jobs\' priorities (high, normal, low), e.g. batch=high,small-1=low; the rest normal')
  .option('--time-limit-s <s>', 'the run fails if the job is not done by then (shared: 600 unless given)', integerOption('--time-limit-s', 1, 3600), 180)
  .option('--json', 'print the summary as JSON')
  .option('--log', 'print every peer\'s log lines to stderr')
  .parse()

// In-process peers get the tuning the peer binary has.
tuneHeapForTiles()

/** --log: each peer's lines to stderr, named p0, p1, ... */
function logLines (): () => (line: string) => void {
  let peerNo = 0
  return () => { const name = `p${peerNo++}`; return line => { process.stderr.write(`${(performance.now() / 1000).toFixed(3)} ${name} ${line}\n`) } }
}

function shareOption (value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !(n >= 0 && n <= 1)) throw new InvalidArgumentError(`a share from 0 to 1, not '${value}'`)
  return n
}

const opts = program.opts<{ images: number, peers: number, tiles: number, scenario: string, seed: number, tileSize: number, leaseMs: number, nsPerPixel: number, ops: string, verify: VerifyLevel, lieShare: number, timeLimitS: number, aloneRuns: number, priorities?: string, json?: boolean, log?: boolean }>()
if (opts.scenario === SHARED) {
  // Its own defaults where a flag was not given: a swarm of 16, a big job, a batch; tiles large enough, and their modelled compute long enough, that the one process's event loop is not what sets the pace.
  const given = (name: string): boolean => program.getOptionValueSource(name) !== 'default'
  const code = await runShared({
    ...opts,
    peers: given('peers') ? opts.peers : 16,
    tiles: given('tiles') ? opts.tiles : 600,
    tileSize: given('tileSize') ? opts.tileSize : 64,
    images: given('images') ? opts.images : 40,
    // Tiles of 0.4 s (64 px): sixteen peers and their clients share this one process's event loop, which adds
    // 50-120 ms to every message on a 2-core machine; with 0.08 s tiles the scenario measured that more than the scheduler.
    nsPerPixel: given('nsPerPixel') ? opts.nsPerPixel : 100_000,
    // Each job three times alone, then together: about two minutes here.
    timeLimitS: given('timeLimitS') ? opts.timeLimitS : 600,
    ...(opts.log === true ? { logFor: logLines() } : {}),
  }).catch((err: Error) => { if (err.name === 'InvalidParameterError') program.error(err.message); throw err })
  process.exit(code)
}
const scenario = SCENARIOS[opts.scenario]
if (scenario === undefined) program.error(`unknown scenario '${opts.scenario}'; one of: ${Object.keys(SCENARIOS).join(', ')}`)
if (scenario.tilesOnly === true && opts.images > 0) program.error(`the ${opts.scenario} scenario is for tiled jobs: a batch's whole images are not checked`)

const log = (line: string): void => { if (opts.json !== true) console.log(line) }
const cols = Math.ceil(Math.sqrt(opts.tiles))
const rows = Math.ceil(opts.tiles / cols)
const width = cols * opts.tileSize - Math.floor(opts.tileSize / 3)
const height = rows * opts.tileSize - Math.floor(opts.tileSize / 5)
log(`scenario ${opts.scenario}: ${scenario.description}`)
const batchMode = opts.images > 0
log(`${opts.peers} peers, ${batchMode ? `a batch of ${opts.images} images` : `${cols * rows} tiles of ${opts.tileSize} px (${width}x${height}), verification ${verifyText(opts.verify)}`}, lease ${opts.leaseMs} ms, ${opts.nsPerPixel} ns/pixel simulated, seed ${opts.seed}; time limit ${opts.timeLimitS} s`)

const limit = setTimeout(() => {
  console.error(`FAILED: not done within the time limit of ${opts.timeLimitS} s`)
  process.exit(1)
}, opts.timeLimitS * 1000)
limit.unref()

const dir = await mkdtemp(join(tmpdir(), 'tileswarm-sim-'))
const steps = resolvePipeline(parseOps(opts.ops))
const image = batchMode ? noiseImage(1, 1, { channels: 3, depth: 8 }, 1) : noiseImage(width, height, { channels: 3, depth: 8 }, opts.seed + 1)
const input = join(dir, 'input.png')
await writeFile(input, await encodeImage(image, { format: 'png' }))
const referencePixels = await runPipeline({ ...image, data: Buffer.from(image.data) }, steps)
const reference = await encodeImage(referencePixels, { format: 'png' })
/** A batch: small noise images of several sizes, and what each must come out as. */
const photos = join(dir, 'photos')
const references = new Map<string, Buffer>()
if (batchMode) {
  await mkdir(photos)
  for (let i = 0; i < opts.images; i++) {
    const one = noiseImage(48 + (i * 37) % 113, 40 + (i * 53) % 97, { channels: 3, depth: 8 }, opts.seed * 100_003 + i + 1)
    const name = `img-${String(i).padStart(5, '0')}.png`
    await writeFile(join(photos, name), await encodeImage(one, { format: 'png' }))
    references.set(name, await encodeImage(await runPipeline(one, steps), { format: 'png' }))
  }
}

const random = prng(opts.seed)
const peerLog = opts.log === true ? logLines() : undefined
// Hellos every 60 s: in one process, 64 peers' discovery (every hello checked by
// every peer, up to 8 new connections each) would cost more CPU than the job.
const cluster = await Cluster.start(opts.peers, { ...(peerLog !== undefined ? { logFor: peerLog } : {}), tileSize: opts.tileSize, leaseMs: opts.leaseMs, nsPerPixel: opts.nsPerPixel, heartbeatMs: 200, announceMs: 500, helloMs: 60_000 })
cluster.seed(random)
const coordinator = cluster.peers[0]!
/** Placements by phase and tile: a job in phases places each tile once per phase. */
let placements = new Map<string, number>()
/** The job's current coordinator; an earlier one, if the job was resumed, and how far it had got. */
let job: JobCoordinator | BatchCoordinator | undefined
/** A batch: images whose output came in, over every coordinator it had. */
const imagesIn = new Set<string>()
let earlier: { completed: number } | undefined
let worstOvershootMs = 0
const reachedWaiters: Array<{ fraction: number, resolve: () => void }> = []
let faultsAt: number | undefined
/** When each peer was excluded for a wrong result, ms after the job was submitted. */
const exclusions = new Map<string, number>()
// Any peer may end up coordinating: a resumed job moves to another.
for (const peer of cluster.peers) {
  peer.events.addEventListener('job', evt => {
    if (job instanceof JobCoordinator) earlier = { completed: job.progress.done }
    const j = (evt as CustomEvent<JobCoordinator>).detail
    job = j
    placements = new Map()
    j.on('excluded', (peer, why) => {
      if (!exclusions.has(peer)) exclusions.set(peer, performance.now() - started)
      // Phases started over place their tiles again.
      if (why.restartPhase !== undefined) for (const key of [...placements.keys()]) if (Number(key.split('/')[0]) >= why.restartPhase) placements.delete(key)
    })
    j.on('placed', tile => {
      const key = `${j.phase}/${tile}`
      placements.set(key, (placements.get(key) ?? 0) + 1)
      const done = j.progress.done / j.progress.total
      for (const w of reachedWaiters.filter(w => done >= w.fraction)) { reachedWaiters.splice(reachedWaiters.indexOf(w), 1); w.resolve() }
    })
  })
  // A batch: an image placed is its output taken, once per coordinator at most.
  peer.events.addEventListener('batch', evt => {
    if (job !== undefined) earlier = { completed: imagesIn.size }
    job = (evt as CustomEvent<BatchCoordinator>).detail
    placements = new Map()
    job.on('image', task => {
      placements.set(task.key, (placements.get(task.key) ?? 0) + 1)
      imagesIn.add(task.key)
      const done = imagesIn.size / opts.images
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
  lieShare: opts.lieShare,
}).catch(err => { log(`scenario driver failed: ${(err as Error).message}`) })

let failures: string[] = []
let done: { tilesByPeer: Record<string, number>, verify?: VerifyFigures } | undefined
/** Output tiles (at the job's tile size) whose pixels differ from the reference. */
let wrongTiles = 0
const written = new Map<string, number>()
try {
  if (batchMode) {
    const out = join(dir, 'out')
    const batch = await submitBatch({ plan: await planBatch([photos], out, { recursive: false }), steps, quality: 90, skipExisting: false }, {
      peer: coordinator.addrs()[0]!,
      idleTimeoutMs: opts.timeLimitS * 1000,
      onBatchEvent: e => { if (e.event === 'image') written.set(e.input, (written.get(e.input) ?? 0) + 1) },
    })
    if (batch.failures.length > 0) failures.push(`${batch.failures.length} images failed: ${batch.failures[0]!.message}`)
    for (const [name, want] of references) if (!(await readFile(join(out, name)).catch(() => Buffer.alloc(0))).equals(want)) failures.push(`${name} differs from the local reference`)
    const twice = [...written.values()].filter(n => n !== 1).length
    if (written.size !== opts.images || twice > 0) failures.push(`${written.size} of ${opts.images} images written, ${twice} more than once`)
    const byPeer: Record<string, number> = {}
    for (const peer of cluster.peers) byPeer[peer.peerId] = 0
    done = { tilesByPeer: byPeer }
  } else {
    done = await submitToSwarm({ steps, input, output: join(dir, 'out.png'), format: 'png', quality: 90 }, { peer: coordinator.addrs()[0]!, tileSize: opts.tileSize, verify: opts.verify, idleTimeoutMs: opts.timeLimitS * 1000 })
  }
} catch (err) {
  failures.push(`job failed: ${(err as Error).message}`)
}
const ended = performance.now()
resolveOver()
for (const w of reachedWaiters.splice(0)) w.resolve()
await driver
clearInterval(monitor)

// Tiles of every phase, or a batch's images.
const tiles = batchMode ? opts.images : job instanceof JobCoordinator ? job.progress.total : 0
const stats = job?.stats
if (done !== undefined && !batchMode) {
  const output = await readFile(join(dir, 'out.png'))
  if (!output.equals(reference)) {
    const pixels = (await decodeImage(output)).image
    const cores = planTiles(referencePixels.width, referencePixels.height, opts.tileSize, 0)
    wrongTiles = cores.filter(t => !extract(pixels, t.core).data.equals(extract(referencePixels, t.core).data)).length
    failures.push(`output differs from the local reference: ${wrongTiles} of ${cores.length} tiles wrong`)
  }
}
// A batch resumed elsewhere hands the new coordinator only the images not yet back.
if (!batchMode && placements.size !== tiles) failures.push(`${placements.size} of ${tiles} tiles placed`)
if (batchMode && imagesIn.size !== tiles) failures.push(`${imagesIn.size} of ${tiles} images in`)
const twice = [...placements.values()].filter(n => n !== 1).length
if (twice > 0) failures.push(`${twice} ${batchMode ? 'images' : 'tiles'} placed more than once`)
const overshootLimitMs = 1000
if (worstOvershootMs > overshootLimitMs) failures.push(`a dead peer's lease outlived its deadline by ${worstOvershootMs.toFixed(0)} ms`)
failures = failures.filter(Boolean)

/** What the liars did, and what became of it. */
function liesSummary (): { told: number, computed: number, excluded: boolean, caught: number, msToExclusion?: number } | undefined {
  const liars = cluster.peers.filter(p => (cluster.lieShare.get(p) ?? 0) > 0)
  if (liars.length === 0) return undefined
  const told = liars.reduce((n, p) => n + cluster.lies.get(p)!.lied, 0)
  const computed = liars.reduce((n, p) => n + cluster.lies.get(p)!.computed, 0)
  const at = liars.map(p => exclusions.get(p.peerId)).filter(ms => ms !== undefined)
  const caught = liars.reduce((n, p) => n + (done?.verify?.excluded[p.peerId] ?? 0), 0)
  return { told, computed, excluded: at.length === liars.length, caught, ...(at.length > 0 ? { msToExclusion: Math.round(Math.max(...at)) } : {}) }
}

const seconds = (ended - started) / 1000
const unit = batchMode ? 'images' : 'tiles'
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
  // A batch's images in before the loss are written already and not sent again; what it recovers are outputs computed and not delivered.
  resumed: earlier === undefined || stats === undefined ? undefined : { finishedBefore: earlier.completed, recovered: stats.recovered, recomputed: batchMode ? 0 : Math.max(0, earlier.completed - stats.recovered) },
  unit,
  resultCacheBytes: [...cluster.peers].reduce((n, p) => n + p.cache.stats.bytes, 0),
  wireMessagesPerTile: Number(((wireTraffic.messages - wire0.messages) / Math.max(1, tiles)).toFixed(2)),
  wireBytesPerTile: Math.round((wireTraffic.bytes - wire0.bytes) / Math.max(1, tiles)),
  gossipMessages: gossip,
  recoveryMsAfterFaults: faultsAt === undefined ? undefined : Math.round(ended - faultsAt),
  recoveryMsPastLease: faultsAt === undefined ? undefined : Math.round(ended - faultsAt - opts.leaseMs),
  worstDeadLeaseOvershootMs: Math.round(Math.max(0, worstOvershootMs)),
  verify: done?.verify === undefined ? undefined : { ...done.verify, extraWorkShare: tiles === 0 ? 0 : Number((done.verify.extra / tiles).toFixed(4)) },
  lies: liesSummary(),
  wrongTilesInOutput: wrongTiles,
  tilesByPeer: done?.tilesByPeer,
  invariants: failures.length === 0 ? 'ok' : failures,
}
if (opts.json === true) {
  console.log(JSON.stringify(summary))
} else {
  log(`done in ${summary.seconds} s: ${summary.tilesPerSecond} ${unit}/s`)
  log(`leases: ${JSON.stringify(summary.leases)}`)
  log(`duplicate work: ${summary.duplicateWorkTiles} ${unit} granted again, ${summary.leases?.duplicateResults} late results dropped`)
  log(`speculation: ${summary.speculativeCopies} copies of straggling ${unit} (${((summary.extraWorkShare ?? 0) * 100).toFixed(1)}% extra work), ${summary.speculativeWins} finished first`)
  if (summary.resumed !== undefined && !batchMode) log(`resumed after losing the coordinator: ${summary.resumed.recovered} of the ${summary.resumed.finishedBefore} tiles finished before were recovered, ${summary.resumed.recomputed} computed again`)
  if (summary.resumed !== undefined && batchMode) log(`resumed after losing the coordinator: ${summary.resumed.finishedBefore} images were in before (written, not sent again); ${summary.resumed.recovered} more came back kept by the workers that computed them`)
  log(`results kept by workers for a later coordinator: ${(summary.resultCacheBytes / 1024 / 1024).toFixed(1)} MB at the end`)
  log(`wire: ${summary.wireMessagesPerTile} messages and ${summary.wireBytesPerTile} bytes per ${batchMode ? 'image' : 'tile'} sent by peers (the result included); ${gossip} gossip messages`)
  if (faultsAt !== undefined) log(`after the faults: done in ${summary.recoveryMsAfterFaults} ms (${summary.recoveryMsPastLease} ms past the ${opts.leaseMs} ms lease)`)
  log(`worst overshoot of a dead peer's lease past its deadline: ${summary.worstDeadLeaseOvershootMs} ms`)
  if (summary.verify !== undefined) log(`verification: ${summary.verify.checked} tiles checked, ${summary.verify.extra} extra computations (${(summary.verify.extraWorkShare * 100).toFixed(1)}% more work), ${summary.verify.disagreements} disagreement${summary.verify.disagreements === 1 ? '' : 's'}, ${summary.verify.replaced} tiles replaced${summary.verify.skipped > 0 ? `, ${summary.verify.skipped} unchecked (no other peer took the check)` : ''}`)
  if (summary.lies !== undefined) log(`lies: ${summary.lies.told} of the liar's ${summary.lies.computed} tiles sent wrong; ${summary.lies.excluded ? `excluded ${summary.lies.msToExclusion} ms into the job, after ${summary.lies.caught} wrong result${summary.lies.caught === 1 ? '' : 's'} lost a vote` : 'never excluded'}; ${wrongTiles} wrong tiles reached the output`)
  log(`invariants: ${failures.length === 0 ? `ok (complete, exact, every ${batchMode ? 'image written once' : 'tile placed once'}, no dead lease past its deadline)` : 'FAILED\n  ' + failures.join('\n  ')}`)
}
await cluster.stop()
await rm(dir, { recursive: true, force: true })
process.exit(failures.length === 0 ? 0 : 1)
