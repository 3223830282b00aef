/**
 * npm run bench:batch: a folder of photos (2-12 MP, made from the samples)
 * through the swarm as one batch, against a sharp loop on this machine with
 * two images at a time (what a user would write instead), in the same run.
 * Also the coordinator's CPU per image and the bytes its process moves per
 * image. Writes bench-batch.json.
 */
import { Command } from 'commander'
import { readFileSync } from 'node:fs'
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import sharp from 'sharp'
import { integerOption } from '../src/cli/args.ts'
import { submitBatch } from '../src/client/batch.ts'
import type { BatchEvent } from '../src/client/batch-events.ts'
import { planBatch } from '../src/client/batch-plan.ts'
import { OPTIMISE_CODING_MAX_PIXELS, parseOps, resolvePipeline } from '../src/imaging/index.ts'
import { REPO, startPeerProcess, type PeerProcess } from './processes.ts'
import { median, processCpu } from './bench/measure.ts'
import { photos } from './bench/photos.ts'

const opts = new Command('bench:batch')
  .description('a batch of photos through the swarm against a sharp loop, in one run')
  .option('--count <n>', 'photos in the batch', integerOption('--count', 4, 100_000), 200)
  .option('--reps <n>', 'runs of each configuration (alternating)', integerOption('--reps', 1, 20), 1)
  .option('--sigma <s>', 'blur sigma', integerOption('--sigma', 1, 20), 2)
  .option('--out <file>', 'where the JSON goes', resolve(REPO, 'bench-batch.json'))
  .parse()
  .opts<{ count: number, reps: number, sigma: number, out: string }>()

const say = (line: string): void => { process.stderr.write(line + '\n') }
/** A process's CPU seconds (user + system) and the bytes it read and wrote (its sockets, for a peer). */
function usage (pid: number): { cpuS: number, ioBytes: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8')
  const field = (key: string): number => Number(io.match(new RegExp(`^${key}: (\\d+)`, 'm'))?.[1] ?? 0)
  return { cpuS: processCpu(pid).all, ioBytes: field('rchar') + field('wchar') }
}

/** Photos of 2 to 12 MP, made once from the samples (kept between runs in the temp folder). */
const work = join(tmpdir(), `tileswarm-batch-bench-${process.pid}`)
const peers: PeerProcess[] = []
try {
  const folder = await photos(opts.count, say)
  const files = (await readdir(folder)).sort().map(f => join(folder, f))
  let pixels = 0
  let inputBytes = 0
  for (const f of files) {
    const m = await sharp(f).metadata()
    pixels += m.width * m.height
    inputBytes += (await stat(f)).size
  }
  say(`${files.length} photos, ${(pixels / 1e6).toFixed(0)} MP, ${(inputBytes / 1e6).toFixed(0)} MB; blur sigma ${opts.sigma}, JPEG q90 out`)
  const steps = resolvePipeline(parseOps(`blur:sigma=${opts.sigma}`))

  const peer = async (name: string, bootstrap?: string): Promise<PeerProcess> => {
    // No kept outputs: a second run of the same batch would be served from them, not computed.
    const p = await startPeerProcess(name, ['--listen', '/ip4/127.0.0.1/tcp/0', '--slots', '1', '--result-cache-mb', '0', '--data-dir', join(work, name), ...(bootstrap !== undefined ? ['--bootstrap', bootstrap] : [])])
    peers.push(p)
    return p
  }
  const solo = await peer('solo')
  const pairA = await peer('pair-a')
  const pairB = await peer('pair-b', pairA.addr)
  await pairB.waitFor(/peer joined/, 15_000)

  type Run = { ms: number, by: Map<string, number>, outputBytes: number, cpu?: Record<string, number>, io?: Record<string, number> }
  const sharpLoop = (atOnce: number) => async (out: string): Promise<Run> => {
    sharp.concurrency(1)
    let next = 0
    let outputBytes = 0
    const started = performance.now()
    const one = async (): Promise<void> => {
      for (let i = next++; i < files.length; i = next++) {
        const meta = await sharp(files[i]!).metadata()
        const info = await sharp(files[i]!).blur(opts.sigma).jpeg({ quality: 90, mozjpeg: false, optimiseCoding: meta.width * meta.height <= OPTIMISE_CODING_MAX_PIXELS }).toFile(join(out, `${i}.jpg`))
        outputBytes += info.size
      }
    }
    await Promise.all(Array.from({ length: atOnce }, one))
    return { ms: performance.now() - started, by: new Map([['sharp', files.length]]), outputBytes }
  }
  const swarm = (to: PeerProcess, watch: PeerProcess[]) => async (out: string): Promise<Run> => {
    const before = new Map(watch.map(p => [p.name, usage(p.child.pid!)]))
    const clientBefore = process.cpuUsage()
    const clientCpu = (): number => { const c = process.cpuUsage(clientBefore); return (c.user + c.system) / 1e6 }
    const by = new Map<string, number>()
    let outputBytes = 0
    const started = performance.now()
    const summary = await submitBatch({ plan: await planBatch([folder], out, { recursive: false }), steps, quality: 90, skipExisting: false }, {
      peer: to.addr,
      onBatchEvent: (e: BatchEvent) => {
        if (e.event !== 'image') return
        const name = watch.find(p => p.peerId === e.by)?.name ?? e.by
        by.set(name, (by.get(name) ?? 0) + 1)
        outputBytes += e.bytes
      },
    })
    const ms = performance.now() - started
    const cpu: Record<string, number> = {}
    cpu.client = clientCpu()
    if (summary.failures.length > 0) throw new Error(`images failed: ${JSON.stringify(summary.failures)}`)
    const io: Record<string, number> = {}
    for (const p of watch) {
      const after = usage(p.child.pid!)
      cpu[p.name] = after.cpuS - before.get(p.name)!.cpuS
      io[p.name] = after.ioBytes - before.get(p.name)!.ioBytes
    }
    return { ms, by, outputBytes, cpu, io }
  }
  const configs: Array<[string, (out: string) => Promise<Run>]> = [
    // One image at a time: what one peer with one slot could be; libvips already keeps more than one core busy with it.
    ['sharp loop, 1 at a time', sharpLoop(1)],
    ['sharp loop, 2 at a time', sharpLoop(2)],
    ['swarm, 1 peer, 1 slot', swarm(solo, [solo])],
    ['swarm, 2 peers, 1 slot each', swarm(pairA, [pairA, pairB])],
  ]
  const runs = new Map<string, Run[]>(configs.map(([name]) => [name, []]))
  for (let rep = 0; rep < opts.reps; rep++) {
    for (const [name, run] of configs) {
      const out = join(work, 'out')
      await rm(out, { recursive: true, force: true })
      await mkdir(out, { recursive: true })
      const r = await run(out)
      runs.get(name)!.push(r)
      say(`${name.padEnd(30)} ${(r.ms / 1000).toFixed(2)} s, ${(files.length / r.ms * 1000).toFixed(2)} images/s, ${(pixels / 1e6 / r.ms * 1000).toFixed(1)} MP/s; by ${[...r.by].map(([k, v]) => `${k} ${v}`).join(', ')}${r.cpu !== undefined ? `; CPU s ${Object.entries(r.cpu).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}` : ''}`)
    }
  }
  const rate = (name: string): number => files.length / (median(runs.get(name)!.map(r => r.ms)) / 1000)
  const pair = runs.get('swarm, 2 peers, 1 slot each')!.at(-1)!
  // The coordinator's process also runs a worker: its CPU less its images at the other worker's cost per image is the coordinating.
  const aImages = pair.by.get('pair-a') ?? 0
  const bImages = pair.by.get('pair-b') ?? 0
  const perImageCompute = bImages > 0 ? pair.cpu!['pair-b']! / bImages : Number.NaN
  const coordinatorCpuMsPerImage = (pair.cpu!['pair-a']! - aImages * perImageCompute) / files.length * 1000
  const outputBytes = pair.outputBytes
  const result = {
    machine: { cores: availableParallelism(), cpu: cpus()[0]?.model, node: process.version, sharp: sharp.versions.sharp, libvips: sharp.versions.vips },
    batch: { photos: files.length, megapixels: Math.round(pixels / 1e6), inputMb: Number((inputBytes / 1e6).toFixed(1)), outputMb: Number((outputBytes / 1e6).toFixed(1)), op: `blur:sigma=${opts.sigma}`, reps: opts.reps },
    imagesPerSecond: Object.fromEntries(configs.map(([name]) => [name, Number(rate(name).toFixed(3))])),
    ratios: {
      twoPeersOverOnePeer: Number((rate('swarm, 2 peers, 1 slot each') / rate('swarm, 1 peer, 1 slot')).toFixed(3)),
      twoPeersOverSharpLoop: Number((rate('swarm, 2 peers, 1 slot each') / rate('sharp loop, 2 at a time')).toFixed(3)),
      onePeerOverSharpLoop1: Number((rate('swarm, 1 peer, 1 slot') / rate('sharp loop, 1 at a time')).toFixed(3)),
      // The most a second image at a time can give on this machine.
      sharpLoop2Over1: Number((rate('sharp loop, 2 at a time') / rate('sharp loop, 1 at a time')).toFixed(3)),
    },
    coordinator: {
      imagesByPeer: Object.fromEntries(pair.by),
      workerCpuMsPerImage: Number((perImageCompute * 1000).toFixed(1)),
      coordinatingCpuMsPerImage: Number(coordinatorCpuMsPerImage.toFixed(1)),
      // Its process's reads and writes (sockets: a peer reads no files), per image, against the input plus the output file.
      ioBytesPerImage: Math.round(pair.io!['pair-a']! / files.length),
      inputPlusOutputBytesPerImage: Math.round((inputBytes + outputBytes) / files.length),
    },
  }
  const targets = {
    '2 peers / 1 peer >= 1.8 (images/s)': result.ratios.twoPeersOverOnePeer >= 1.8,
    '2 peers / a sharp loop 2 at a time >= 0.9': result.ratios.twoPeersOverSharpLoop >= 0.9,
  }
  await writeFile(opts.out, JSON.stringify({ ...result, targets }, null, 2) + '\n')
  say('')
  say(`ratios: ${JSON.stringify(result.ratios)}`)
  say(`coordinator: ${JSON.stringify(result.coordinator)}`)
  for (const [target, ok] of Object.entries(targets)) say(`${ok ? 'met   ' : 'MISSED'} ${target}`)
  say(`wrote ${opts.out}`)
} finally {
  await Promise.all(peers.map(async p => await p.stop()))
  await rm(work, { recursive: true, force: true })
}
