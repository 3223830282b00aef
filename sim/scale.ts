/**
 * npm run bench:scale: does the swarm scale? N emulated hosts (network
 * namespaces on one bridge, each link shaped with tc), the real peer program
 * on each (sim/scale-peer.ts) with its tiles' compute replaced by a cost model
 * calibrated here from the real operation, so 16 hosts fit on two cores. The
 * coordinator does all its real work: it decodes the input (once, for the
 * swarm), cuts and sends every tile's pixels, places every result, encodes
 * and sends the output. Prints the speedup over one peer, the work efficiency
 * (the CPU of every process, client included, plus the modelled compute, over
 * sharp's own pipeline at one thread), the coordinator's CPU per tile and the
 * hosts that keeps busy, its serial seconds and the bytes on its link per
 * job; writes them to bench.json under "scale". Needs root and iproute2;
 * removes everything it made, on any exit, and stops by itself.
 */
import { Command } from 'commander'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import sharp from 'sharp'
import { integerOption } from '../src/cli/args.ts'
import { decodeImage, extract, parseOps, pipelineRadius, planJob, planTiles, processTile, resolvePipeline, type RawImage } from '../src/imaging/index.ts'
import { PEER_JS, REPO, startPeerProcess, type PeerProcess } from './processes.ts'
import { cpuSince, processCpu, timedRun } from './bench/measure.ts'

const opts = new Command('bench:scale')
  .description('the speedup curve of emulated hosts against one peer')
  .option('--hosts <list>', 'swarm sizes to measure', '1,2,4,8,16')
  .option('--size <WxH>', 'the input image, made from sim/samples/saw.jpg', '12000x9000')
  .option('--ops <pipeline>', 'the operation', 'median:size=5')
  .option('--rate <tc rate>', 'each host\'s link, both ways', '1gbit')
  .option('--delay-ms <ms>', 'one-way latency between two hosts', '0.2')
  .option('--slots <n>', 'slots per host', integerOption('--slots', 1, 64), 1)
  .option('--tile-size <px>', 'tile edge', integerOption('--tile-size', 64, 4096), 512)
  .option('--reps <n>', 'jobs per swarm size (the median is kept)', integerOption('--reps', 1, 10), 1)
  .option('--limit-s <s>', 'the whole run stops by then', integerOption('--limit-s', 60, 7200), 1800)
  .option('--out <file>', 'where the JSON goes (merged under "scale")', resolve(REPO, 'bench.json'))
  .parse()
  .opts<{ hosts: string, size: string, ops: string, rate: string, delayMs: string, slots: number, tileSize: number, reps: number, limitS: number, out: string }>()

const say = (line: string): void => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} scale: ${line}\n`) }
const hostCounts = opts.hosts.split(',').map(Number)
if (hostCounts.some(n => !Number.isInteger(n) || n < 1 || n > 32)) throw new Error(`--hosts: expected sizes from 1 to 32, got ${opts.hosts}`)
const [width, height] = opts.size.split('x').map(Number) as [number, number]
if (!(width > 0 && height > 0)) throw new Error(`--size: expected WxH, got ${opts.size}`)
if (process.getuid?.() !== 0) { say('needs root (ip netns, tc); skipped'); process.exit(1) }
for (const tool of ['ip', 'tc']) {
  try { execFileSync(tool, ['-V'], { stdio: 'ignore' }) } catch { say(`needs ${tool} (apt-get install iproute2)`); process.exit(1) }
}

const NODE = process.execPath
const TAG = `tss${process.pid % 100000}`
const BRIDGE = `${TAG}br`
const SUBNET = '198.18.2'
const maxHosts = Math.max(...hostCounts)
const ns = (i: number): string => `${TAG}h${i}`
const ip = (...args: string[]): void => { execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] }) }
const dir = await mkdtemp(join(tmpdir(), 'tileswarm-scale-'))
let peers: PeerProcess[] = []

async function stopPeers (): Promise<void> {
  await Promise.allSettled(peers.map(async p => await p.stop('SIGTERM')))
  peers = []
}

function teardown (): void {
  for (const p of peers) p.child.kill('SIGKILL')
  for (let i = 1; i <= maxHosts; i++) {
    try { ip('netns', 'del', ns(i)) } catch {}
  }
  try { ip('link', 'del', BRIDGE) } catch {}
}
process.on('exit', teardown)
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => { say(`${signal}: cleaning up`); process.exit(130) })
const deadline = setTimeout(() => { say(`over --limit-s ${opts.limitS}: stopping`); process.exit(2) }, opts.limitS * 1000)
deadline.unref()

try {
  // The input, and the model: decode and operation timed on one thread here, on the real image.
  const input = join(dir, 'input.jpg')
  await sharp(resolve(REPO, 'sim/samples/saw.jpg'), { limitInputPixels: false }).resize(width, height, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(input)
  const file = await readFile(input)
  sharp.concurrency(1)
  const { image } = await decodeImage(file, { maxPixels: width * height })
  // The anchor: sharp's own pipeline at one thread, in its own process (median and blur have one).
  const anchor = JSON.parse((await timedRun([NODE, resolve(REPO, 'sim/bench/native.ts'), opts.ops, input, join(dir, 'anchor.jpg'), '1'])).stdout) as { cpuS: number }
  const steps = resolvePipeline(parseOps(opts.ops))
  const plan = planJob(steps, { width, height, format: image })
  if (plan.prelude.length > 0 || plan.phases.length > 1) throw new Error(`--ops ${opts.ops}: the cost model covers one-phase tiled pipelines, not geometry or whole-image steps`)
  const tiles = planTiles(width, height, opts.tileSize, pipelineRadius(steps))
  // Whole tiles from across the image.
  const sample = tiles.filter(t => t.core.width === opts.tileSize && t.core.height === opts.tileSize).filter((_, i, all) => i % Math.max(1, Math.floor(all.length / 6)) === 0).slice(0, 6)
  let computeMs = 0
  let patch: RawImage | undefined
  for (const tile of sample) {
    const started = performance.now()
    const core = await processTile(extract(image, tile.haloed), tile, steps)
    computeMs += performance.now() - started
    patch ??= core
  }
  const nsPerPixel = computeMs * 1e6 / (sample.length * opts.tileSize * opts.tileSize)
  const patchFile = join(dir, 'patch.raw')
  await writeFile(patchFile, patch!.data)
  const modelFile = join(dir, 'model.json')
  await writeFile(modelFile, JSON.stringify({ nsPerPixel, patch: { file: patchFile, width: patch!.width, height: patch!.height, channels: patch!.channels, depth: patch!.depth } }))
  say(`model: sharp's own pipeline ${anchor.cpuS.toFixed(1)} s of CPU at one thread; ${opts.ops} ${nsPerPixel.toFixed(0)} ns/pixel (${(nsPerPixel * width * height / 1e9).toFixed(1)} s for the image on one thread); input ${(file.length / 1e6).toFixed(1)} MB, raw ${(image.data.length / 1e6).toFixed(0)} MB`)
  const rawBytes = image.data.length

  // The hosts: one bridge, a veth each, both ends shaped (half the latency on each, so host to host is --delay-ms).
  say(`${maxHosts} hosts on ${BRIDGE}, ${SUBNET}.0/24, links ${opts.rate}, ${opts.delayMs} ms`)
  ip('link', 'add', BRIDGE, 'type', 'bridge')
  ip('addr', 'add', `${SUBNET}.254/24`, 'dev', BRIDGE)
  ip('link', 'set', BRIDGE, 'up')
  // netem shapes rate and latency; a kernel without it (this one) gets tbf: the rate alone, and the run says so.
  const netem = ['root', 'netem', 'delay', `${Number(opts.delayMs) / 2}ms`, 'rate', opts.rate, 'limit', '100000']
  const tbf = ['root', 'tbf', 'rate', opts.rate, 'burst', '512kb', 'latency', '20ms']
  let shape = netem
  for (let i = 1; i <= maxHosts; i++) {
    ip('netns', 'add', ns(i))
    ip('link', 'add', `${TAG}v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(i))
    ip('link', 'set', `${TAG}v${i}`, 'master', BRIDGE, 'up')
    ip('-n', ns(i), 'addr', 'add', `${SUBNET}.${i}/24`, 'dev', 'eth0')
    ip('-n', ns(i), 'link', 'set', 'eth0', 'up')
    ip('-n', ns(i), 'link', 'set', 'lo', 'up')
    if (i === 1) {
      try {
        execFileSync('tc', ['qdisc', 'add', 'dev', `${TAG}v${i}`, ...netem], { stdio: 'ignore' })
      } catch {
        shape = tbf
        say(`no netem in this kernel: links get ${opts.rate} (tbf) but no added latency`)
        execFileSync('tc', ['qdisc', 'add', 'dev', `${TAG}v${i}`, ...shape])
      }
    } else {
      execFileSync('tc', ['qdisc', 'add', 'dev', `${TAG}v${i}`, ...shape])
    }
    execFileSync('ip', ['netns', 'exec', ns(i), 'tc', 'qdisc', 'add', 'dev', 'eth0', ...shape])
  }
  const linkBytes = (): number => {
    const read = (what: string): number => Number(readFileSync(`/sys/class/net/${TAG}v1/statistics/${what}`, 'utf8'))
    return read('rx_bytes') + read('tx_bytes')
  }



  const startHost = async (i: number, bootstrap?: string): Promise<PeerProcess> => {
    const p = await startPeerProcess(`host ${i}`, ['--listen', `/ip4/${SUBNET}.${i}/tcp/4001`, '--data-dir', join(dir, `data${i}`), '--slots', String(opts.slots), '--tile-size', String(opts.tileSize), '--spread', 'always', '--lease-ms', '60000', '--result-cache-mb', '0', '--max-pixels', String(width * height), ...(bootstrap !== undefined ? ['--bootstrap', bootstrap] : [])], {
      command: ['ip', 'netns', 'exec', ns(i), NODE],
      script: resolve(REPO, 'sim/scale-peer.ts'),
      env: { ...process.env, TILESWARM_MODEL: modelFile, UV_THREADPOOL_SIZE: String(Math.max(4, opts.slots)) },
    })
    peers.push(p)
    return p
  }

  /** The first line matching `pattern` printed after the first `seen` lines. */
  const newLine = async (p: PeerProcess, seen: number, pattern: RegExp, timeoutMs: number): Promise<string> => {
    const until = performance.now() + timeoutMs
    for (;;) {
      const line = p.lines.slice(seen).find(l => pattern.test(l))
      if (line !== undefined) return line
      if (performance.now() > until) throw new Error(`${p.name}: no line matching ${pattern} within ${timeoutMs} ms`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  /** A job from a fresh client process (outside the hosts, on the bridge): its wall time, its CPU, its done event. */
  const submit = async (to: string, out: string): Promise<{ wallS: number, cpuS: number, done: { tilesByPeer: Record<string, number>, verify?: { extra: number } } }> => {
    try {
      const t = await timedRun([NODE, PEER_JS, 'submit', '--peer', to, '--ops', opts.ops, '-i', input, '-o', out, '--json'], { timeoutMs: opts.limitS * 1000 })
      const done = t.stdout.trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>).find(e => e.event === 'done')
      return { wallS: t.wallS, cpuS: t.cpuS, done: done as { tilesByPeer: Record<string, number>, verify?: { extra: number } } }
    } catch (err) {
      throw new Error(`${(err as Error).message}\ncoordinator:\n${peers[0]?.lines.slice(-8).join('\n') ?? ''}`)
    }
  }

  type Row = { hosts: number, wallS: number, tilesS: number, cpuS: { coordinator: number, all: number, client: number, modelled: number }, workEfficiency: number, coordinatorMsPerTile: number, hostsKeptBusy: number, speedup: number, efficiency: number, serial: { headerS: number, encodeS: number, sendS: number }, linkBytes: number, linkPerInputPlusOutput: number, linkPerRaw: number, tilesByPeer: number }
  const rows: Row[] = []
  let one: number | undefined
  for (const n of hostCounts) {
    const first = await startHost(1)
    for (let i = 2; i <= n; i++) await startHost(i, first.addr)
    await Promise.all(peers.slice(1).map(async p => await p.waitFor(/peer joined/, 30_000)))
    const runs: Array<Omit<Row, 'speedup' | 'efficiency'>> = []
    for (let rep = 0; rep < opts.reps; rep++) {
      const out = join(dir, `out-${n}-${rep}.jpg`)
      const before = linkBytes()
      const cpuBefore = peers.map(p => processCpu(p.child.pid!))
      const seen = first.lines.length
      const job = await submit(first.addr, out)
      const { wallS } = job
      const bytes = linkBytes() - before
      const used = peers.map((p, i) => cpuSince(cpuBefore[i]!, p.child.pid!))
      const cpu = used.map(u => u.all)
      // The tiles' compute, modelled (slept, not spent): what it would have cost, checks' extra computations included.
      const tileCount = Object.values(job.done.tilesByPeer).reduce((a, b) => a + b, 0)
      const modelled = width * height * nsPerPixel / 1e9 * (1 + (job.done.verify?.extra ?? 0) / Math.max(1, tileCount))
      const all = cpu.reduce((a, b) => a + b, 0) + job.cpuS + modelled
      // The coordinator's own JavaScript per tile (its worker's tiles are modelled): grants, pixels out and in, placing.
      const perTileS = used[0]!.threads.main / Math.max(1, tileCount)
      const tileComputeS = opts.tileSize * opts.tileSize * nsPerPixel / 1e9
      const done = await newLine(first, seen, /: done in /, 10_000)
      const part = (name: string): number => Number(done.match(new RegExp(`${name} ([0-9.]+) s`))?.[1] ?? NaN)
      const outBytes = (await readFile(out)).length
      const workers = (done.match(/tiles by peer: ([^;]*)/)?.[1] ?? '').split(',').filter(s => s.trim() !== '').length
      runs.push({ hosts: n, wallS, serial: { headerS: part('header and digest'), encodeS: part('encode'), sendS: part('send') }, tilesS: part('tiles'), cpuS: { coordinator: cpu[0]!, all, client: job.cpuS, modelled }, workEfficiency: all / anchor.cpuS, coordinatorMsPerTile: perTileS * 1000, hostsKeptBusy: Math.floor(tileComputeS / perTileS), linkBytes: bytes, linkPerInputPlusOutput: bytes / (file.length + outBytes), linkPerRaw: bytes / rawBytes, tilesByPeer: workers })
      say(`${n} host${n > 1 ? 's' : ''}, job ${rep + 1}: ${wallS.toFixed(2)} s, ${workers} peers did tiles, coordinator's link ${(bytes / 1e6).toFixed(0)} MB, CPU ${cpu[0]!.toFixed(1)} s coordinator, ${all.toFixed(1)} s in all with the client and ${modelled.toFixed(1)} s modelled (work efficiency ${(all / anchor.cpuS).toFixed(2)}), coordinator ${(perTileS * 1000).toFixed(1)} ms a tile (${Math.floor(tileComputeS / perTileS)} hosts kept busy); ${done.replace(/^\S+ job \S+ /, '').replace(/; tiles by peer.*/, '')}`)
    }
    await stopPeers()
    const run = [...runs].sort((a, b) => a.wallS - b.wallS)[Math.floor(runs.length / 2)]!
    one ??= n === 1 ? run.wallS : undefined
    const speedup = one !== undefined ? one / run.wallS : NaN
    rows.push({ ...run, speedup, efficiency: speedup / n })
  }

  // Hosts share this machine's cores: where their CPU over the wall time nears the core count, the curve measures this machine, not the swarm.
  const cores = availableParallelism()
  const table = ['hosts   wall s  speedup  efficiency  work efficiency  coord ms/tile  hosts kept busy  serial s (header+encode+send)  link MB  link/(in+out)  link/raw  coord CPU s  all CPU s / wall']
  for (const r of rows) {
    table.push(`${String(r.hosts).padStart(5)}  ${r.wallS.toFixed(2).padStart(7)}  ${r.speedup.toFixed(2).padStart(7)}  ${r.efficiency.toFixed(2).padStart(10)}  ${r.workEfficiency.toFixed(2).padStart(15)}  ${r.coordinatorMsPerTile.toFixed(1).padStart(13)}  ${String(r.hostsKeptBusy).padStart(15)}  ${(r.serial.headerS + r.serial.encodeS + r.serial.sendS).toFixed(2).padStart(29)}  ${(r.linkBytes / 1e6).toFixed(0).padStart(7)}  ${r.linkPerInputPlusOutput.toFixed(2).padStart(13)}  ${r.linkPerRaw.toFixed(2).padStart(8)}  ${r.cpuS.coordinator.toFixed(1).padStart(11)}  ${((r.cpuS.all - r.cpuS.modelled) / r.wallS).toFixed(2).padStart(6)}${(r.cpuS.all - r.cpuS.modelled) / r.wallS > 0.8 * cores ? ' (CPU-bound here)' : ''}`)
  }
  process.stdout.write(`${width}x${height} ${opts.ops}, links ${opts.rate} ${shape === netem ? `${opts.delayMs} ms` : 'no added latency'}, ${opts.slots} slot(s) per host; speedup against one host\n${table.join('\n')}\n`)
  const existing = existsSync(opts.out) ? JSON.parse(readFileSync(opts.out, 'utf8')) as Record<string, unknown> : {}
  existing.scale = { when: new Date().toISOString(), image: { width, height, inputBytes: file.length, rawBytes }, ops: opts.ops, link: { rate: opts.rate, delayMs: shape === netem ? Number(opts.delayMs) : 0, shaper: shape[1] }, slots: opts.slots, tileSize: opts.tileSize, model: { nsPerPixel }, anchorCpuS: anchor.cpuS, rows }
  await writeFile(opts.out, JSON.stringify(existing, null, 2) + '\n')
  say(`wrote ${opts.out}`)
} finally {
  await stopPeers()
  teardown()
  await rm(dir, { recursive: true, force: true })
}
