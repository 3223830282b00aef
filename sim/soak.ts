/**
 * npm run soak: does a peer give its memory back? (issue 30, item 3). Peers
 * as processes (1 slot each, short cache lifetimes), a mixed stream of jobs
 * from two clients at once (single images of several sizes and operations,
 * small batches, a corrupt file now and then), a worker SIGKILLed and
 * restarted on its data dir every ~50 jobs, and once the peer the clients
 * submit to SIGTERMed (they fall back to the next --peer). Every second each
 * peer's RSS and open fds from /proc; at the end, idle past the caches'
 * lifetime, again. Fails when a peer's end-idle RSS is over 1.5x its start
 * (after startup and one warm-up job) or its fds grew. Writes bench-soak.json.
 */
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { readFileSync } from 'node:fs'
import { Command, Option } from 'commander'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import sharp from 'sharp'
import { integerOption } from '../src/cli/args.ts'
import { PEER_JS, REPO, startPeerProcess, type PeerProcess } from './processes.ts'
import { heapFigures, memoryMap, PeerMeter } from './soak-sampler.ts'

const LAUNCHER = resolve(REPO, 'bin/tileswarm.cjs')
const opts = new Command('soak')
  .description('peers as processes under a mixed stream of jobs, workers killed and restarted: RSS and fds over time; fails when memory is not given back')
  .option('--jobs <n>', 'jobs in all', integerOption('--jobs', 10, 100_000), 300)
  .option('--peers <n>', 'peers, 1 slot each', integerOption('--peers', 3, 16), 3)
  .option('--result-cache-s <s>', 'the peers\' result cache lifetime; the idle check waits it out', integerOption('--result-cache-s', 1, 3600), 15)
  .option('--kill-every <n>', 'SIGKILL and restart a worker every this many jobs', integerOption('--kill-every', 5, 100_000), 50)
  .option('--max-ratio <x>', 'fail when a peer\'s end-idle RSS is over this times its start', Number, 1.5)
  .option('--fd-slack <n>', 'fail when a peer\'s fds grew by more', integerOption('--fd-slack', 0, 10_000), 16)
  .option('--time-limit <s>', 'give up (and fail) after this long', integerOption('--time-limit', 60, 86_400), 1800)
  .addOption(new Option('--malloc <which>', 'peers started by the installed command\'s launcher, on the allocator it gives them (jemalloc where the system has it, else glibc\'s malloc with its settings), or as dist/peer.js on glibc\'s own').choices(['launcher', 'glibc']).default('launcher'))
  .option('--peer-env <k=v>', 'an environment variable for the peers; repeat it', (v: string, all: string[]) => [...all, v], [] as string[])
  .option('--out <file>', 'where the JSON goes', resolve(REPO, 'bench-soak.json'))
  .parse()
  .opts<{ jobs: number, peers: number, resultCacheS: number, killEvery: number, maxRatio: number, fdSlack: number, timeLimit: number, malloc: 'launcher' | 'glibc', peerEnv: string[], out: string }>()

const say = (line: string): void => { process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`) }
const t0 = performance.now()
const work = join(tmpdir(), `tileswarm-soak-${process.pid}`)
const peerEnv: NodeJS.ProcessEnv = { ...process.env, ...Object.fromEntries(opts.peerEnv.map(kv => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) }
const peers: Array<PeerProcess | undefined> = []
const ports: Array<{ p2p: number, http: number }> = []
const meters: PeerMeter[] = []
const counts = { ok: 0, badRefused: 0, failed: 0, badAccepted: 0 }
const failedLines: string[] = []

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => { resolve(port) })
    })
  })
}

/** Peer `i` on its own ports and data dir (the same after a restart: same id, same address). */
async function startPeer (i: number): Promise<void> {
  const live = peers.find((p, j) => p !== undefined && j !== i)
  const args = ['--listen', `/ip4/127.0.0.1/tcp/${ports[i]!.p2p}`, '--http', `127.0.0.1:${ports[i]!.http}`, '--slots', '1', '--spread', 'always', '--result-cache-s', String(opts.resultCacheS), '--data-dir', join(work, `peer-${i}`), ...(live !== undefined ? ['--bootstrap', live.addr] : [])]
  peers[i] = await startPeerProcess(`peer ${i}`, args, { env: peerEnv, ...(opts.malloc === 'launcher' ? { script: LAUNCHER } : {}) })
  if (live !== undefined) await peers[i]!.waitFor(/peer joined/, 15_000)
}

/** What the peers run on, as each said in its up line ('jemalloc' or 'libc'). */
function allocators (): string {
  const names = peers.map(p => p?.lines.map(l => / up: .*?, (\w+) malloc, /.exec(l)?.[1]).find(n => n !== undefined) ?? '?')
  return [...new Set(names)].join('/') + ' malloc'
}

/** The peer's own process: the launcher's child where the launcher started it. */
function peerPid (p: PeerProcess | undefined): number | undefined {
  const pid = p?.child.pid
  if (pid === undefined || opts.malloc !== 'launcher') return pid
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0]) || undefined
  } catch {
    return undefined
  }
}

/** Stops a peer with `signal`; a SIGKILL goes to the peer itself, as the launcher would outlive it. */
async function strike (p: PeerProcess, signal: NodeJS.Signals): Promise<void> {
  const pid = peerPid(p)
  if (signal === 'SIGKILL' && pid !== undefined && pid !== p.child.pid) {
    try { process.kill(pid, 'SIGKILL') } catch { /* gone already */ }
    // The launcher reaps it and ends the same way; killed first, it would leave it a zombie holding its data dir's lock.
    const exited = p.child.exitCode !== null || p.child.signalCode !== null
    if (!exited) await new Promise(resolve => { p.child.once('exit', resolve); setTimeout(resolve, 10_000) })
  }
  await p.stop(signal)
}

async function restart (i: number, signal: NodeJS.Signals): Promise<void> {
  const p = peers[i]!
  peers[i] = undefined
  say(`${signal} peer ${i}`)
  await strike(p, signal)
  await startPeer(i)
  meters[i]!.restarts++
}

/** The inputs: single images of several sizes, a small batch folder, a corrupt JPEG. */
async function inputs (): Promise<{ singles: string[], batch: string, corrupt: string }> {
  const saw = resolve(REPO, 'sim/samples/saw.jpg')
  const singles: string[] = []
  for (const mp of [0.5, 2, 6]) {
    const width = Math.round(Math.sqrt(mp * 1e6 * 3 / 2))
    singles.push(join(work, `photo-${mp}mp.jpg`))
    await sharp(saw).resize(width, Math.round(width * 2 / 3), { fit: 'fill' }).jpeg({ quality: 90 }).toFile(singles.at(-1)!)
  }
  const batch = join(work, 'batch')
  await mkdir(batch)
  const photos = ['flowers.jpeg', '4.webp', 'Landscape_5.jpg', 'low-contrast.jpg'].map(n => resolve(REPO, 'sim/samples/photos', n))
  for (const [k, source] of photos.entries()) await sharp(source).rotate().resize(1200, 900, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(join(batch, `b${k}.jpg`))
  const corrupt = join(work, 'corrupt.jpg')
  const whole = await sharp(saw).resize(1500, 1000, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer()
  // A JPEG cut short, its scan overwritten: its header reads, its pixels do not.
  const bad = Buffer.from(whole.subarray(0, Math.floor(whole.length / 2)))
  bad.fill(0x5a, 1000)
  await writeFile(corrupt, bad)
  return { singles, batch, corrupt }
}

const OPS = ['blur:sigma=2', 'median:size=3', 'canny', 'greyscale', 'resize:width=800', 'blur:sigma=4,greyscale']

/** Job `n` of the mix: a corrupt file every 25th, a batch every 6th, else a single image, sizes and operations in turn. */
function jobOf (n: number, files: Awaited<ReturnType<typeof inputs>>): { input: string, ops: string, out: string, bad: boolean } {
  const out = join(work, 'out', `job-${n}`)
  if (n % 25 === 12) return { input: files.corrupt, ops: 'blur:sigma=2', out: `${out}.jpg`, bad: true }
  if (n % 6 === 5) return { input: files.batch, ops: OPS[n % 4]!, out, bad: false }
  return { input: files.singles[n % files.singles.length]!, ops: OPS[n % OPS.length]!, out: `${out}.jpg`, bad: false }
}

/** One client's job, a fresh process, every peer as --peer (the first alive first). */
async function submit (job: ReturnType<typeof jobOf>): Promise<void> {
  const addrs = [...peers.flatMap(p => p !== undefined ? [p.addr] : []), ...ports.map((p, i) => peers[i] === undefined ? `127.0.0.1:${p.p2p}` : undefined).filter(a => a !== undefined)]
  const child = spawn(process.execPath, [PEER_JS, 'submit', ...addrs.flatMap(a => ['--peer', a]), '--ops', job.ops, '-i', job.input, '-o', job.out], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 180_000)
  const code = await new Promise<number | null>(resolve => child.on('exit', resolve))
  clearTimeout(timer)
  await rm(job.out, { recursive: true, force: true })
  if (job.bad) counts[code === 0 ? 'badAccepted' : 'badRefused']++
  else if (code === 0) counts.ok++
  else {
    counts.failed++
    failedLines.push(`${job.ops} ${job.input}: ${stderr.trim().split('\n').at(-1) ?? code}`)
  }
}

async function sampleAll (): Promise<void> {
  const at = Math.round(performance.now() - t0) / 1000
  for (const m of meters) m.sample(at)
}

/** Waits `waitS` with no job running (the peers' idle collection, their caches' lifetimes), then samples. */
async function idleSample (waitS: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, waitS * 1000))
  await sampleAll()
}

async function soak (): Promise<void> {
  await mkdir(join(work, 'out'), { recursive: true })
  const files = await inputs()
  for (let i = 0; i < opts.peers; i++) ports.push({ p2p: await freePort(), http: await freePort() })
  for (let i = 0; i < opts.peers; i++) {
    await startPeer(i)
    meters.push(new PeerMeter(`peer ${i}`, () => peerPid(peers[i])))
  }
  const sampler = setInterval(() => { void sampleAll() }, 1000)
  try {
    await submit({ input: files.singles[1]!, ops: 'blur:sigma=2', out: join(work, 'out', 'warm-up.jpg'), bad: false })
    await idleSample(5)
    for (const [i, m] of meters.entries()) { m.start = m.samples.at(-1); m.startHeap = await heapFigures(ports[i]!.http); m.startMap = memoryMap(peerPid(peers[i])!) }
    say(`start: ${meters.map(m => `${m.name} ${m.start!.rssMb} MB, ${m.start!.fds} fds`).join('; ')} (malloc: ${opts.malloc}, ${allocators()}${opts.peerEnv.length > 0 ? `, ${opts.peerEnv.join(' ')}` : ''})`)
    await run(files)
    say(`jobs done: ${JSON.stringify(counts)}; idle for ${opts.resultCacheS + 15} s (the result cache's lifetime and more)`)
    await idleSample(opts.resultCacheS + 15)
    for (const [i, m] of meters.entries()) { m.end = m.samples.at(-1); m.endHeap = await heapFigures(ports[i]!.http); m.endMap = memoryMap(peerPid(peers[i])!) }
  } finally {
    clearInterval(sampler)
  }
}

/** Two clients drain the jobs; a worker killed every `killEvery` jobs, the entry peer SIGTERMed once halfway. */
async function run (files: Awaited<ReturnType<typeof inputs>>): Promise<void> {
  let next = 0
  let kills = 0
  let strikes = Promise.resolve()
  let struck: unknown
  const client = async (): Promise<void> => {
    for (let n = next++; n < opts.jobs; n = next++) {
      if (n > 0 && n % 30 === 0) say(`${n} jobs: ${meters.map(m => `${m.name} ${m.samples.at(-1)?.rssMb ?? '-'} MB (peak ${m.peakMb}), ${m.samples.at(-1)?.fds ?? '-'} fds`).join('; ')}`)
      if (n > 0 && n % opts.killEvery === 0) {
        kills++
        const halfway = kills === Math.max(1, Math.round(opts.jobs / opts.killEvery / 2))
        const victim = halfway ? 0 : 1 + (kills % (opts.peers - 1))
        // A failed restart is said at the end, not an unhandled rejection that would leave the peers running.
        strikes = strikes.then(async () => { await restart(victim, halfway ? 'SIGTERM' : 'SIGKILL') }).catch((err: unknown) => { struck ??= err })
      }
      await submit(jobOf(n, files))
    }
  }
  await Promise.all([client(), client()])
  await strikes
  if (struck !== undefined) throw struck
}

let code = 1
const limit = setTimeout(() => { say(`time limit (${opts.timeLimit} s) reached`); void stopAll().then(() => process.exit(1)) }, opts.timeLimit * 1000)
async function stopAll (): Promise<void> {
  await Promise.all(peers.map(async p => { if (p !== undefined) await strike(p, 'SIGKILL') }))
  await rm(work, { recursive: true, force: true })
}
try {
  await soak()
  const verdicts = meters.map(m => m.verdict(opts.maxRatio, opts.fdSlack))
  const failures = verdicts.flatMap(v => v.failures)
  for (const [i, v] of verdicts.entries()) say(`${meters[i]!.name}: ${JSON.stringify(v.report)}`)
  if (counts.failed > 0) say(`${counts.failed} jobs failed: ${failedLines.slice(0, 5).join(' | ')}`)
  const report = { jobs: opts.jobs, peers: opts.peers, resultCacheS: opts.resultCacheS, malloc: opts.malloc, allocators: allocators(), peerEnv: opts.peerEnv, counts, failedJobs: failedLines, wallS: Math.round((performance.now() - t0) / 1000), maxRatio: opts.maxRatio, byPeer: Object.fromEntries(verdicts.map((v, i) => [meters[i]!.name, v.report])), series: Object.fromEntries(meters.map(m => [m.name, m.samples])), failures }
  await writeFile(opts.out, JSON.stringify(report, null, 1) + '\n')
  for (const f of failures) say(`FAIL ${f}`)
  code = failures.length > 0 ? 1 : 0
  say(code === 0 ? `pass: every peer's end-idle RSS within ${opts.maxRatio}x its start, fds flat` : 'soak failed')
} finally {
  clearTimeout(limit)
  await stopAll()
}
process.exit(code)
