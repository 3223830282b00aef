/**
 * npm run bench: the swarm against local sharp, measured in the same run,
 * alternating. Ratios are the headline, not seconds. Writes bench.json.
 */
import { Command } from 'commander'
import { integerOption } from '../src/cli-args.ts'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import sharp, { type Sharp } from 'sharp'
import { OPTIMISE_CODING_MAX_PIXELS } from '../src/imaging/index.ts'
import { tuneHeapForTiles } from '../src/runtime.ts'
import { runLocal } from '../src/client/local.ts'
import { requestFromFlags } from '../src/client/options.ts'
import { submitToSwarm, type SubmitEvent } from '../src/client/submit.ts'
import { Cluster } from './cluster.ts'
import type { JobCoordinator } from '../src/job/coordinator.ts'
import { PEER_JS, REPO, startPeerProcess, type PeerProcess } from './processes.ts'
import { execFile } from 'node:child_process'

const opts = new Command('bench')
  .description('the swarm against local sharp, in one run')
  .option('--reps <n>', 'repetitions of each measurement (108 MP: at most 2)', integerOption('--reps', 1, 20), 3)
  .option('--quick', 'skip the 108 MP image')
  .option('--ops <names>', 'only these of the timed operations, comma-separated (e.g. "canny,equalize"); targets that need others say "not measured"', (v: string) => v.split(',').map(s => s.trim()))
  .option('--out <file>', 'where the JSON goes', resolve(REPO, 'bench.json'))
  .parse()
  .opts<{ reps: number, quick?: boolean, out: string, ops?: string[] }>()

const CORES = availableParallelism()
const LEASE_MS = 2000
const OPS: Record<string, string> = {
  sobel: 'sobel',
  'blur sigma 3': 'blur:sigma=3',
  'median 5': 'median:size=5',
  saturation: 'saturation:factor=1.5',
  'pipeline blur,sharpen,sobel': 'blur:sigma=2,sharpen:sigma=1,sobel',
  // Jobs in phases: whole-image summaries, then the pixels. No sharp equivalent: measured against our untiled run.
  canny: 'canny',
  equalize: 'equalize',
}
for (const name of opts.ops ?? []) if (OPS[name] === undefined) throw new Error(`no timed operation '${name}'; known: ${Object.keys(OPS).join(', ')}`)

/** sharp's own pipeline (decode, op, encode streamed in one libvips graph), where it has the op. */
const NATIVE: Record<string, (s: Sharp) => Sharp> = {
  'blur sigma 3': s => s.blur(3),
  'median 5': s => s.median(5),
}

// The same process tuning the peer binary has: the in-process peers and the local runs get it alike.
tuneHeapForTiles()

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2 }
const say = (line: string): void => { process.stderr.write(line + '\n') }

function vm (pid: number): { rssMb: number, peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (key: string): number => Number(status.match(new RegExp(`^${key}:\\s+(\\d+)`, 'm'))?.[1] ?? 0)
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 }
}

const dir = await mkdtemp(join(tmpdir(), 'tileswarm-bench-'))
const peers: PeerProcess[] = []
try {
  say(`preparing images in ${dir}`)
  const photo = resolve(REPO, 'sim/samples/saw.jpg')
  const images: Record<string, string> = { 'photo 6 MP': photo }
  images['24 MP'] = join(dir, '24mp.jpg')
  await sharp(photo).resize(6000, 4000, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(images['24 MP'])
  if (opts.quick !== true) {
    images['108 MP'] = join(dir, '108mp.jpg')
    await sharp(photo, { limitInputPixels: false }).resize(12000, 9000, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(images['108 MP'])
  }

  // Read once, outside every timed run.
  const pixels: Record<string, number> = {}
  for (const path of Object.values(images)) {
    const { width, height } = await sharp(path).metadata()
    pixels[path] = width * height
  }

  // Separate swarms; each peer is its own process on loopback.
  const peer = async (name: string, slots: number, bootstrap?: string): Promise<PeerProcess> => {
    const p = await startPeerProcess(name, ['--listen', '/ip4/127.0.0.1/tcp/0', '--slots', String(slots), '--data-dir', join(dir, name), '--lease-ms', String(LEASE_MS), ...(bootstrap !== undefined ? ['--bootstrap', bootstrap] : [])])
    peers.push(p)
    return p
  }
  const oneSlot = await peer('1p-1slot', 1)
  const allSlots = await peer(`1p-${CORES}slots`, CORES)
  const pairA = await peer('2p-a', 1)
  const pairB = await peer('2p-b', 1, pairA.addr)
  await pairB.waitFor(/peer joined/, 15_000)

  type Config = { name: string, run: (input: string, ops: string, out: string, op: string) => Promise<void>, only?: (op: string) => boolean }
  const local = (threads: number): Config => ({
    name: `local ${threads} thread${threads > 1 ? 's' : ''}`,
    run: async (input, ops, out) => { await runLocal(requestFromFlags({ ops, imagePath: input, out }), { threads }) },
  })
  const native = (threads: number): Config => ({
    name: `sharp native ${threads} thread${threads > 1 ? 's' : ''}`,
    only: op => NATIVE[op] !== undefined,
    run: async (input, _ops, out, op) => {
      sharp.concurrency(threads)
      await NATIVE[op]!(sharp(input, { limitInputPixels: false })).jpeg({ quality: 90, mozjpeg: false, optimiseCoding: pixels[input]! <= OPTIMISE_CODING_MAX_PIXELS }).toFile(out)
    },
  })
  const swarm = (name: string, to: PeerProcess): Config => ({
    name,
    run: async (input, ops, out) => { await submitToSwarm(requestFromFlags({ ops, imagePath: input, out }), { peer: to.addr, idleTimeoutMs: 600_000 }) },
  })
  const configs = [local(1), native(1), swarm('swarm 1 peer 1 slot', oneSlot), local(CORES), native(CORES), swarm(`swarm 1 peer ${CORES} slots`, allSlots), swarm('swarm 2 peers 1 slot each', pairA)]

  const results: Array<{ image: string, op: string, config: string, medianMs: number, minMs: number, maxMs: number, reps: number }> = []
  for (const [image, input] of Object.entries(images)) {
    const big = image === '108 MP'
    const ops = (big ? ['median 5', 'blur sigma 3', 'sobel', 'canny'] : Object.keys(OPS)).filter(op => opts.ops?.includes(op) ?? true)
    for (const op of ops) {
      const here = configs.filter(c => c.only?.(op) ?? true)
      const times = new Map<string, number[]>(here.map(c => [c.name, []]))
      const reps = big ? Math.min(2, opts.reps) : opts.reps
      for (let rep = 0; rep < reps; rep++) {
        // Alternate: every config once per round, so drift hits them all alike.
        for (const c of here) {
          const started = performance.now()
          await c.run(input, OPS[op]!, join(dir, 'out.jpg'), op)
          times.get(c.name)!.push(performance.now() - started)
        }
      }
      for (const c of here) {
        const t = times.get(c.name)!
        results.push({ image, op, config: c.name, medianMs: Math.round(median(t)), minMs: Math.round(Math.min(...t)), maxMs: Math.round(Math.max(...t)), reps })
      }
      const row = here.map(c => `${c.name} ${(median(times.get(c.name)!) / 1000).toFixed(2)}s`).join(' | ')
      say(`${image.padEnd(10)} ${op.padEnd(28)} ${row}`)
    }
  }
  // Fixed costs: a 64x64 image end to end (a fresh client process, start to file written) against a fresh node running sharp's own pipeline on it.
  say('fixed costs: 64x64, blur sigma 3, fresh processes')
  const tiny = join(dir, 'tiny.jpg')
  await sharp(photo).resize(64, 64, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(tiny)
  const wall = async (args: string[]): Promise<number> => {
    const started = performance.now()
    await new Promise<void>((resolvePromise, reject) => {
      execFile(process.execPath, args, { cwd: REPO, timeout: 60_000 }, err => { err === null ? resolvePromise() : reject(err) })
    })
    return performance.now() - started
  }
  const fixedRuns = { submit: [] as number[], sharp: [] as number[] }
  for (let rep = 0; rep < Math.max(5, opts.reps); rep++) {
    fixedRuns.submit.push(await wall([PEER_JS, 'submit', '--peer', oneSlot.addr, '-i', tiny, '-o', join(dir, 'tiny-out.jpg'), '--ops', 'blur:sigma=3']))
    fixedRuns.sharp.push(await wall(['--input-type=module', '-e', `import sharp from 'sharp'; await sharp(${JSON.stringify(tiny)}).blur(3).jpeg({ quality: 90 }).toFile(${JSON.stringify(join(dir, 'tiny-sharp.jpg'))})`]))
  }
  const fixedCosts = { submitMs: Math.round(median(fixedRuns.submit)), sharpMs: Math.round(median(fixedRuns.sharp)), ratio: Number((median(fixedRuns.submit) / median(fixedRuns.sharp)).toFixed(2)) }

  // Memory: fresh processes, one job on the biggest image, so a peak belongs to that job alone.
  const memImage = Object.entries(images).at(-1)!
  say(`memory: a fresh coordinator and worker, median 5 on ${memImage[0]}`)
  const memA = await peer('mem-coordinator', 1)
  const memB = await peer('mem-worker', 1, memA.addr)
  await memB.waitFor(/peer joined/, 15_000)
  const idleRss = { coordinator: vm(memA.child.pid!).rssMb, worker: vm(memB.child.pid!).rssMb }
  await submitToSwarm(requestFromFlags({ ops: OPS['median 5']!, imagePath: memImage[1], out: join(dir, 'mem.jpg') }), { peer: memA.addr, idleTimeoutMs: 600_000 })
  const memory = { image: memImage[0], coordinatorPeakMb: vm(memA.child.pid!).peakMb, workerPeakMb: vm(memB.child.pid!).peakMb, idleRssMb: idleRss }

  // Recovery: three one-slot peers, one SIGKILLed at half the job.
  say('recovery: 3 peers, one SIGKILLed at 50%')
  const r1 = await peer('rec-1', 1)
  const r2 = await peer('rec-2', 1, r1.addr)
  const r3 = await peer('rec-3', 1, r1.addr)
  await Promise.all([r2.waitFor(/peer joined/, 15_000), r3.waitFor(/peer joined/, 15_000)])
  let killedAt = 0
  let tiles = 0
  const done = await submitToSwarm(requestFromFlags({ ops: 'median:size=5', imagePath: images['24 MP']!, out: join(dir, 'rec.jpg') }), {
    peer: r1.addr,
    tileSize: 256,
    onEvent: (e: SubmitEvent) => {
      if (e.event === 'progress' && killedAt === 0 && e.done * 2 >= e.total) {
        killedAt = performance.now()
        r3.child.kill('SIGKILL')
      }
      if (e.event === 'accepted') tiles = e.tiles
    },
  })
  const recovery = {
    leaseMs: LEASE_MS,
    afterKillMs: Math.round(performance.now() - killedAt),
    afterKillMinusLeaseMs: Math.round(performance.now() - killedAt - LEASE_MS),
    tilesDoneTwice: done.leases.granted - tiles,
    // Leases the dead peer held: handed back when its connection closed, or expired.
    deadPeerHeld: done.leases.released + done.leases.expired,
    leases: done.leases,
  }

  // Coordination alone: 8 in-process peers, a no-op, 256 px tiles.
  say('coordination: 8 in-process peers, convert (no-op), 256 px tiles')
  const cluster = await Cluster.start(8, { heartbeatMs: 200, helloMs: 10_000 })
  const coordination: { tiles: number, tilesPerSecond: number[] } = { tiles: 0, tilesPerSecond: [] }
  try {
    const biggest = Object.values(images).at(-1)!
    const coordinatorPeer = cluster.peers[0]!
    for (let rep = 0; rep < opts.reps; rep++) {
      // Timed at the coordinator, from the job's creation to its last tile: the
      // client shares this process and would see the events late.
      const timing = new Promise<{ tiles: number, ms: number }>(resolve => {
        coordinatorPeer.events.addEventListener('job', evt => {
          const job = (evt as CustomEvent<JobCoordinator>).detail
          const started = performance.now()
          job.on('progress', (done, total) => { if (done === total) resolve({ tiles: total, ms: performance.now() - started }) })
        }, { once: true })
      })
      await submitToSwarm(requestFromFlags({ ops: 'convert', imagePath: biggest, out: join(dir, 'convert.jpg') }), { peer: coordinatorPeer.addrs()[0]!, tileSize: 256 })
      const { tiles, ms } = await timing
      coordination.tiles = tiles
      coordination.tilesPerSecond.push(Math.round(tiles / (ms / 1000)))
    }
  } finally {
    await cluster.stop()
  }

  const get = (image: string, op: string, config: string): number => results.find(r => r.image === image && r.op === op && r.config === config)?.medianMs ?? Number.NaN
  const threadsName = (n: number): string => `${n} thread${n > 1 ? 's' : ''}`
  // The anchor: sharp's own decode-op-encode pipeline at the same thread count, what a user would write instead.
  const overSharp = (image: string, op: string, config: string, threads: number): number => Number((get(image, op, config) / get(image, op, `sharp native ${threadsName(threads)}`)).toFixed(3))
  const bigImage = opts.quick === true ? '24 MP' : '108 MP'
  const rawMb = pixels[images[bigImage]!]! * 3 / 1024 / 1024
  const sized = opts.quick === true ? ['24 MP'] : ['24 MP', '108 MP']
  const perImage = (f: (image: string) => number): Record<string, number> => Object.fromEntries(sized.map(image => [image, f(image)]))
  const ratios = {
    onePeerOneSlotOverSharp1Thread: { 'median 5': perImage(i => overSharp(i, 'median 5', 'swarm 1 peer 1 slot', 1)), 'blur sigma 3': perImage(i => overSharp(i, 'blur sigma 3', 'swarm 1 peer 1 slot', 1)) },
    twoPeersOverSharp2Threads: { 'median 5': perImage(i => overSharp(i, 'median 5', 'swarm 2 peers 1 slot each', 2)), 'blur sigma 3': perImage(i => overSharp(i, 'blur sigma 3', 'swarm 2 peers 1 slot each', 2)) },
    onePeerAllSlotsOverSharpAllThreads: { 'median 5': perImage(i => overSharp(i, 'median 5', `swarm 1 peer ${CORES} slots`, CORES)) },
    // Not the anchor: our untiled pipeline, the reference for exactness.
    untiledLocalOverSharp1Thread: { 'median 5': perImage(i => overSharp(i, 'median 5', 'local 1 thread', 1)) },
    speedup2pOver1p: Number((get(bigImage, 'median 5', 'swarm 1 peer 1 slot') / get(bigImage, 'median 5', 'swarm 2 peers 1 slot each')).toFixed(3)),
    // Jobs in phases: what the phases cost one peer over the untiled run, and what a second peer gives back.
    phases: Object.fromEntries(['canny', 'equalize'].map(op => [op, {
      onePeerOverUntiledLocal1Thread: perImage(i => Number((get(i, op, 'swarm 1 peer 1 slot') / get(i, op, 'local 1 thread')).toFixed(3))),
      twoPeersOverUntiledLocal1Thread: perImage(i => Number((get(i, op, 'swarm 2 peers 1 slot each') / get(i, op, 'local 1 thread')).toFixed(3))),
      speedup2pOver1p: perImage(i => Number((get(i, op, 'swarm 1 peer 1 slot') / get(i, op, 'swarm 2 peers 1 slot each')).toFixed(3))),
    }])),
    fixedCosts,
  }
  const all = (r: Record<string, number>, limit: number): boolean => Object.values(r).every(v => v <= limit)
  const summary = {
    machine: { cores: CORES, cpu: cpus()[0]?.model, node: process.version, sharp: sharp.versions.sharp, libvips: sharp.versions.vips },
    outputFormat: 'jpeg q90 (PNG encoding is serial and would dominate)',
    results,
    ratios,
    coordination: { ...coordination, medianTilesPerSecond: median(coordination.tilesPerSecond) },
    recovery,
    memory: { ...memory, rawImageMb: Math.round(rawMb), coordinatorOverRaw: Number((memory.coordinatorPeakMb / rawMb).toFixed(2)), workerAboveIdleMb: Math.round(memory.workerPeakMb - memory.idleRssMb.worker) },
    targets: {
      'one peer, one slot / sharp\'s own at 1 thread, median 5, <= 1.10': all(ratios.onePeerOneSlotOverSharp1Thread['median 5'], 1.10),
      'one peer, one slot / sharp\'s own at 1 thread, blur sigma 3, <= 1.3': all(ratios.onePeerOneSlotOverSharp1Thread['blur sigma 3'], 1.3),
      [`two one-slot peers / sharp's own at 2 threads, median 5, <= 1.25${CORES !== 2 ? ' (meant for a 2-core machine)' : ''}`]: all(ratios.twoPeersOverSharp2Threads['median 5'], 1.25),
      'fixed costs: 64x64 end to end / a fresh node running sharp, <= 1.5': fixedCosts.ratio <= 1.5,
      '2 peers / 1 peer speedup >= 1.8 (median 5)': ratios.speedup2pOver1p >= 1.8,
      'coordination >= 2000 tiles/s': median(coordination.tilesPerSecond) >= 2000,
      'recovery <= lease + 2 s': recovery.afterKillMs <= LEASE_MS + 2000,
      'tiles done twice <= tiles the dead peer held': recovery.tilesDoneTwice <= recovery.deadPeerHeld,
      'coordinator peak RSS <= 2.5x raw': memory.coordinatorPeakMb <= 2.5 * rawMb,
      'worker <= 150 MB above idle': memory.workerPeakMb - memory.idleRssMb.worker <= 150,
    },
  }
  await writeFile(opts.out, JSON.stringify(summary, null, 2) + '\n')
  say('')
  say(`ratios: ${JSON.stringify(ratios)}`)
  say(`coordination: ${summary.coordination.medianTilesPerSecond} tiles/s (${coordination.tiles} tiles of 256 px, 8 peers)`)
  say(`recovery: done ${recovery.afterKillMs} ms after the kill (lease ${LEASE_MS} ms); tiles done twice: ${recovery.tilesDoneTwice}, the dead peer held ${recovery.deadPeerHeld}`)
  say(`memory: coordinator peak ${Math.round(memory.coordinatorPeakMb)} MB (${summary.memory.coordinatorOverRaw}x the ${Math.round(rawMb)} MB raw image); worker ${summary.memory.workerAboveIdleMb} MB above idle`)
  const measured = (target: string): boolean => !(opts.ops !== undefined && /median 5|blur sigma 3/.test(target) && !opts.ops.some(op => target.includes(op)))
  for (const [target, ok] of Object.entries(summary.targets)) say(`${!measured(target) ? 'not measured' : ok ? 'met   ' : 'MISSED'} ${target}`)
  say(`wrote ${opts.out}`)
} finally {
  await Promise.all(peers.map(async p => await p.stop()))
  await rm(dir, { recursive: true, force: true })
}
