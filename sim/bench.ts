/**
 * npm run bench: what spreading a job costs and gains, on photos (a sample
 * stretched to 24 and 100 MP) with generated noise beside them. Every job is
 * a fresh client process and real peer processes on loopback; configurations
 * alternate within each repetition; medians are kept. The anchor is sharp's
 * own decode-operation-encode pipeline in its own process at the same thread
 * count. Work efficiency: CPU summed over every process of a job (client,
 * coordinator, workers) over the CPU of sharp's pipeline at one thread. It
 * does not depend on the machine's core count, so it says what N real
 * machines can give. Writes bench.json.
 */
import { Command } from 'commander'
import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import sharp from 'sharp'
import { integerOption } from '../src/cli/args.ts'
import { PEER_JS, REPO } from './processes.ts'
import { median, timedRun } from './bench/measure.ts'
import { NATIVE } from './bench/native.ts'
import { Swarm, type JobRun } from './bench/swarm.ts'
import { breakdown, coordinatorLoad, fixedCosts, idleMemory, peakMemory, type Parts } from './bench/extras.ts'
import { noiseImage } from './model.ts'

const opts = new Command('bench')
  .description('work efficiency and speed of the swarm against sharp\'s own pipeline, in one run')
  .option('--reps <n>', 'repetitions of each measurement, alternating (100 MP: at most 2)', integerOption('--reps', 1, 20), 3)
  .option('--quick', 'skip the 100 MP photo and the noise')
  .option('--ops <names>', 'only these operations (median, blur, steps, canny), comma-separated', (v: string) => v.split(',').map(s => s.trim()))
  .option('--out <file>', 'where the JSON goes', resolve(REPO, 'bench.json'))
  .parse()
  .opts<{ reps: number, quick?: boolean, out: string, ops?: string[] }>()

const OPS: Record<string, { ops: string, ext: string }> = {
  median: { ops: 'median:size=5', ext: 'jpg' },
  blur: { ops: 'blur:sigma=3', ext: 'jpg' },
  steps: { ops: 'greyscale,blur:sigma=1.5,sharpen', ext: 'jpg' },
  canny: { ops: 'canny', ext: 'png' },
}
for (const name of opts.ops ?? []) if (OPS[name] === undefined) throw new Error(`no operation '${name}'; known: ${Object.keys(OPS).join(', ')}`)
const wanted = (op: string): boolean => opts.ops?.includes(op) ?? true
const say = (line: string): void => { process.stderr.write(line + '\n') }
const node = process.execPath
/** A Python with OpenCV (Debian's python3-opencv goes with /usr/bin/python3, which may not be the first on the PATH). */
const openCvPython = ['python3', '/usr/bin/python3'].find(python => { try { execFileSync(python, ['-c', 'import cv2'], { stdio: 'ignore' }); return true } catch { return false } })
const hasOpenCv = openCvPython !== undefined

interface Row { image: string, op: string, config: string, wallS: number, cpuS: number, reps: number, tiled?: boolean, extra?: number }

const dir = await mkdtemp(join(tmpdir(), 'tileswarm-bench-'))
const swarms: Swarm[] = []
try {
  say(`preparing images in ${dir}`)
  const photo = resolve(REPO, 'sim/samples/saw.jpg')
  const images: Array<{ name: string, path: string, ops: string[] }> = [{ name: 'photo 24 MP', path: join(dir, 'photo-24mp.jpg'), ops: ['median', 'blur', 'steps', 'canny'] }]
  await sharp(photo).resize(6000, 4000, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(images[0]!.path)
  if (opts.quick !== true) {
    images.push({ name: 'photo 100 MP', path: join(dir, 'photo-100mp.jpg'), ops: ['median', 'blur'] })
    await sharp(photo, { limitInputPixels: false }).resize(12000, 8400, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(images[1]!.path)
    images.push({ name: 'noise 24 MP', path: join(dir, 'noise-24mp.jpg'), ops: ['median', 'blur'] })
    const noise = noiseImage(6000, 4000, { channels: 3, depth: 8 }, 1)
    await sharp(noise.data, { raw: { width: 6000, height: 4000, channels: 3 } }).jpeg({ quality: 90 }).toFile(images[2]!.path)
  }
  const one = await Swarm.start('one', 1, dir)
  swarms.push(one)
  const two = await Swarm.start('two', 2, dir)
  swarms.push(two)
  const startRss = idleMemory([...one.peers, ...two.peers])

  const rows: Row[] = []
  const runs = new Map<string, JobRun>()
  const parts = new Map<string, Parts>()
  const exact: string[] = []
  for (const image of images) {
    for (const op of image.ops.filter(wanted)) {
      const { ops, ext } = OPS[op]!
      const local = join(dir, `local.${ext}`)
      await timedRun([node, PEER_JS, 'submit', '--local', '--ops', ops, '-i', image.path, '-o', local])
      const reference = await readFile(local)
      type Config = { name: string, run: (rep: number) => Promise<{ wallS: number, cpuS: number, out?: string, job?: JobRun }> }
      const anchor = async (threads: number, rep: number): Promise<{ wallS: number, cpuS: number }> => {
        if (NATIVE[ops] !== undefined) {
          const t = await timedRun([node, resolve(REPO, 'sim/bench/native.ts'), ops, image.path, join(dir, `native.${ext}`), String(threads), ...(rep === 0 && threads === 1 ? ['--parts'] : [])])
          const r = JSON.parse(t.stdout) as { wallS: number, cpuS: number, decode?: { cpuS: number }, encode?: { cpuS: number } }
          if (r.decode !== undefined) parts.set(`${image.name}/${op}`, { decodeS: r.decode.cpuS, encodeS: r.encode!.cpuS, pipelineS: r.cpuS })
          // The process's wall (what a user waits for), the pipeline's CPU (its start-up aside: the stricter anchor).
          return { wallS: t.wallS, cpuS: r.cpuS }
        }
        // No sharp equivalent: OpenCV's whole process (imread, Canny, imwrite) where it is installed, else our own --local.
        const t = hasOpenCv
          ? await timedRun([openCvPython!, '-c', `import cv2; cv2.setNumThreads(${threads}); i = cv2.imread(${JSON.stringify(image.path)}, cv2.IMREAD_GRAYSCALE); cv2.imwrite(${JSON.stringify(join(dir, 'cv.png'))}, cv2.Canny(i, 100, 200))`])
          : await timedRun([node, PEER_JS, 'submit', '--local', '--threads', String(threads), '--ops', ops, '-i', image.path, '-o', join(dir, `anchor.${ext}`)])
        return { wallS: t.wallS, cpuS: t.cpuS }
      }
      const swarmConfig = (name: string, swarm: Swarm, extra: string[] = []): Config => ({
        name,
        run: async rep => {
          const out = join(dir, `${swarm.name}-${rep}.${ext}`)
          const job = await swarm.run(image.path, ops, out, extra)
          return { wallS: job.wallS, cpuS: job.cpu.all, out, job }
        },
      })
      const configs: Config[] = [
        { name: 'anchor 1 thread', run: async rep => await anchor(1, rep) },
        { name: 'anchor 2 threads', run: async rep => await anchor(2, rep) },
        swarmConfig('1 peer', one),
        swarmConfig('2 peers', two),
        swarmConfig('2 peers, checks off', two, ['--verify', 'off']),
      ]
      const reps = image.name.includes('100') ? Math.min(2, opts.reps) : opts.reps
      const got = new Map<string, Array<{ wallS: number, cpuS: number, job?: JobRun }>>()
      for (let rep = 0; rep < reps; rep++) {
        for (const c of configs) {
          const r = await c.run(rep)
          got.set(c.name, [...(got.get(c.name) ?? []), r])
          if (r.out !== undefined && !(await readFile(r.out)).equals(reference)) exact.push(`${image.name} ${op} ${c.name}: output differs from submit --local`)
        }
      }
      for (const c of configs) {
        const rs = got.get(c.name)!
        const mid = [...rs].sort((a, b) => a.wallS - b.wallS)[Math.floor(rs.length / 2)]!
        if (mid.job !== undefined) runs.set(`${image.name}/${op}/${c.name}`, mid.job)
        rows.push({ image: image.name, op, config: c.name, wallS: median(rs.map(r => r.wallS)), cpuS: median(rs.map(r => r.cpuS)), reps, ...(mid.job !== undefined ? { tiled: mid.job.tiled, extra: mid.job.extraComputations } : {}) })
      }
      say(`${image.name.padEnd(13)} ${op.padEnd(7)} ${configs.map(c => { const r = rows.find(x => x.image === image.name && x.op === op && x.config === c.name)!; return `${c.name} ${r.wallS.toFixed(2)} s/${r.cpuS.toFixed(2)} cpu` }).join(' | ')}`)
    }
  }

  const row = (image: string, op: string, config: string): Row | undefined => rows.find(r => r.image === image && r.op === op && r.config === config)
  const ratio = (a: number | undefined, b: number | undefined): number => a === undefined || b === undefined ? Number.NaN : Number((a / b).toFixed(3))
  const table = rows.filter(r => r.config === '2 peers').map(r => {
    const [a1, a2, p1, p2, off] = ['anchor 1 thread', 'anchor 2 threads', '1 peer', '2 peers', '2 peers, checks off'].map(c => row(r.image, r.op, c))
    return {
      image: r.image,
      op: r.op,
      efficiency: { onePeer: ratio(p1?.cpuS, a1?.cpuS), twoPeers: ratio(p2?.cpuS, a1?.cpuS), twoPeersChecksOff: ratio(off?.cpuS, a1?.cpuS) },
      wall: { onePeerOverAnchor1: ratio(p1?.wallS, a1?.wallS), twoPeersOverAnchor2: ratio(p2?.wallS, a2?.wallS), speedup2over1: ratio(p1?.wallS, p2?.wallS), anchorSpeedup2over1: ratio(a1?.wallS, a2?.wallS) },
      tiled: { onePeer: p1?.tiled, twoPeers: p2?.tiled },
      extraComputations: p2?.extra,
    }
  })
  for (const t of table) say(`${t.image.padEnd(13)} ${t.op.padEnd(7)} efficiency 1 peer ${t.efficiency.onePeer}, 2 peers ${t.efficiency.twoPeers} (checks off ${t.efficiency.twoPeersChecksOff}); 2 peers / 1 peer ${t.wall.speedup2over1}x (sharp 2/1 threads ${t.wall.anchorSpeedup2over1}x); 1 peer / anchor ${t.wall.onePeerOverAnchor1}; ${t.tiled.twoPeers === true ? 'tiled' : 'one pipeline'} on 2 peers`)

  say('where the CPU goes: 2 peers, photo 24 MP, profiled')
  const where = await breakdown(images[0]!.path, Object.entries(OPS).filter(([op]) => wanted(op)).map(([op, o]) => ({ op, ...o, parts: parts.get(`photo 24 MP/${op}`), run: runs.get(`photo 24 MP/${op}/2 peers`) })), dir)
  say('coordinator load: its CPU per tile and per batch image')
  const load = await coordinatorLoad(two, runs, parts, dir)
  say('fixed costs: 64x64 end to end, fresh processes')
  const fixed = await fixedCosts(one, dir)
  say('memory: idle after the jobs, and a coordinator\'s peak at 100 MP')
  await new Promise(resolve => setTimeout(resolve, 5000))
  const endRss = idleMemory([...one.peers, ...two.peers])
  const peak = opts.quick === true ? undefined : await peakMemory(images[1]!.path, dir)

  const all = (f: (t: typeof table[number]) => number, limit: number, where: (t: typeof table[number]) => boolean): boolean => table.filter(where).every(t => f(t) <= limit)
  const photoMedian = (t: typeof table[number]): boolean => t.image.startsWith('photo') && t.op === 'median'
  const targets: Record<string, boolean | string> = {
    'work efficiency, 2 peers, median 5 (photos) <= 1.15': all(t => t.efficiency.twoPeers, 1.15, photoMedian),
    'work efficiency, 2 peers, blur sigma 3 and canny (photos) <= 1.3': all(t => t.efficiency.twoPeers, 1.3, t => t.image.startsWith('photo') && (t.op === 'blur' || t.op === 'canny')),
    '2 peers / 1 peer, wall, median 5 (photos) >= 1.5x': table.filter(photoMedian).every(t => t.wall.speedup2over1 >= 1.5),
    'never slower: 2 peers wall <= 1.05 x 1 peer, every op and image': table.every(t => 1 / t.wall.speedup2over1 <= 1.05),
    '1 peer / sharp at 1 thread, wall, median, blur, 3 steps <= 1.10': all(t => t.wall.onePeerOverAnchor1, 1.10, t => t.image.startsWith('photo') && t.op !== 'canny'),
    [`canny, 1 peer / ${hasOpenCv ? 'OpenCV\'s whole process' : 'our own --local (OpenCV not installed)'} <= 1.2`]: all(t => t.wall.onePeerOverAnchor1, 1.2, t => t.op === 'canny'),
    '64x64 end to end <= 1.5x a fresh node running sharp': fixed.ratio <= 1.5,
    'idle RSS 5 s after the jobs <= 2x at start': endRss.every((r, i) => r <= 2 * startRss[i]!),
    ...(peak !== undefined ? { 'coordinator peak, 2 peers, 100 MP <= 2x the raw image': peak.overRaw <= 2 } : {}),
    'every output byte-identical to submit --local': exact.length === 0 ? true : exact.join('; '),
  }
  const summary = {
    machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, sharp: sharp.versions.sharp, libvips: sharp.versions.vips },
    anchor: `sharp's own pipeline in its own process (decode, op, encode; JPEG q90, PNG for canny); canny against ${hasOpenCv ? 'OpenCV (imread, Canny, imwrite)' : 'our --local (no OpenCV here)'}`,
    rows, table, where, load, fixed, memory: { startRssMb: startRss, idleRssMb: endRss, peak }, targets,
  }
  await writeFile(opts.out, JSON.stringify(summary, null, 2) + '\n')
  for (const [target, ok] of Object.entries(targets)) say(`${ok === true ? 'met   ' : 'MISSED'} ${target}${typeof ok === 'string' ? `: ${ok}` : ''}`)
  say(`wrote ${opts.out}`)
} finally {
  await Promise.all(swarms.map(async s => await s.stop()))
  await rm(dir, { recursive: true, force: true })
}
