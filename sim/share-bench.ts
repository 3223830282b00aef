/**
 * npm run bench:share: one swarm shared by several clients, as issue 28
 * measures it. Peers are processes (1 slot each); every job is a fresh
 * client process with an identity of its own (a submitter of its own).
 * - a small job alone, then submitted while another client's batch runs: its slowdown;
 * - two equal jobs started together: how far apart they finish;
 * - the same two, one `--priority high`: its share of the swarm, as its time
 *   alone over its time shared (the swarm's throughput held equal).
 * Every single image's output is checked against `submit --local`'s. Writes
 * bench-share.json.
 */
import { Command } from 'commander'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import sharp from 'sharp'
import { integerOption } from '../src/cli/args.ts'
import { PEER_JS, REPO, startLoopbackSwarm, writePeerLogs, type PeerProcess } from './processes.ts'
import { median, timedRun } from './bench/measure.ts'
import { photos } from './bench/photos.ts'

const opts = new Command('bench:share')
  .description('a swarm shared by several clients: a small job beside a batch, equal jobs together, high beside normal')
  .option('--peers <n>', 'peers, 1 slot each', integerOption('--peers', 2, 16), 2)
  .option('--count <n>', 'photos in the batch', integerOption('--count', 4, 1000), 40)
  .option('--reps <n>', 'runs of each measure', integerOption('--reps', 1, 10), 2)
  .option('--out <file>', 'where the JSON goes', resolve(REPO, 'bench-share.json'))
  .option('--logs <dir>', 'write the peers\' logs here at the end (share-peer-I.log)')
  .parse()
  .opts<{ peers: number, count: number, reps: number, out: string, logs?: string }>()

const say = (line: string): void => { process.stderr.write(line + '\n') }
const work = join(tmpdir(), `tileswarm-share-bench-${process.pid}`)
const peers: PeerProcess[] = []

/** What `submit --local` makes of each single input: every swarm output must equal it. */
const references = new Map<string, Buffer>()

/** One client's job, a fresh process, timed to its end; a single image's output checked against its reference. */
async function submit (input: string, ops: string, output: string, extra: string[] = []): Promise<number> {
  const run = await timedRun([process.execPath, PEER_JS, 'submit', '--peer', peers[0]!.addr, '--ops', ops, '-i', input, '-o', output, ...extra], { timeoutMs: 600_000 })
  const reference = references.get(`${input} ${ops}`)
  if (reference !== undefined && !reference.equals(await readFile(output))) throw new Error(`${output} differs from submit --local's`)
  return run.wallS
}

async function reference (input: string, ops: string): Promise<void> {
  const output = join(work, `reference-${references.size}.jpg`)
  await timedRun([process.execPath, PEER_JS, 'submit', '--local', '--ops', ops, '-i', input, '-o', output])
  references.set(`${input} ${ops}`, await readFile(output))
}

/** Runs two jobs started together; their times. */
async function together (a: () => Promise<number>, b: () => Promise<number>): Promise<[number, number]> {
  return await Promise.all([a(), b()])
}

try {
  await mkdir(work, { recursive: true })
  const folder = await photos(opts.count, say)
  const small = join(work, 'small.jpg')
  const medium = join(work, 'medium.jpg')
  await sharp(resolve(REPO, 'sim/samples/saw.jpg')).resize(3000, 2000, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(small)
  await sharp(resolve(REPO, 'sim/samples/saw.jpg')).resize(4800, 3200, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(medium)
  await reference(small, 'blur:sigma=2')
  await reference(medium, 'median:size=5')
  // --spread always: peers sharing one machine's cores would run these jobs whole on their coordinators, and the workers' shares are what is measured.
  await startLoopbackSwarm(opts.peers, { dataRoot: work, args: ['--slots', '1', '--result-cache-mb', '0', '--spread', 'always', '--allow-priority', 'all'], into: peers })
  const out = (name: string): string => join(work, `${name}-${Math.random().toString(36).slice(2)}`)
  const smallJob = async (): Promise<number> => await submit(small, 'blur:sigma=2', `${out('small')}.jpg`)
  const batch = async (): Promise<number> => await submit(folder, 'blur:sigma=2', out('batch'))
  const equal = async (extra: string[] = []): Promise<number> => await submit(medium, 'median:size=5', `${out('medium')}.jpg`, extra)

  const rows: Record<string, number[]> = { smallAlone: [], batchAlone: [], smallBesideBatch: [], batchShared: [], equalAlone: [], equalGap: [], highShare: [] }
  for (let rep = 0; rep < opts.reps; rep++) {
    rows.smallAlone!.push(await smallJob())
    rows.batchAlone!.push(await batch())
    // The small job comes 3 s into the batch: a person's second job on a busy swarm.
    const batchRun = batch()
    await new Promise(resolve => setTimeout(resolve, 3000))
    rows.smallBesideBatch!.push(await smallJob())
    rows.batchShared!.push(await batchRun)
    rows.equalAlone!.push(await equal())
    const [a, b] = await together(async () => await equal(), async () => await equal())
    rows.equalGap!.push(Math.abs(a - b) / Math.max(a, b))
    const [high] = await together(async () => await equal(['--priority', 'high']), async () => await equal())
    rows.highShare!.push(rows.equalAlone!.at(-1)! / high)
    say(`rep ${rep + 1}: small alone ${rows.smallAlone!.at(-1)!.toFixed(2)} s, beside the batch ${rows.smallBesideBatch!.at(-1)!.toFixed(2)} s; equal jobs ${(100 * rows.equalGap!.at(-1)!).toFixed(0)}% apart; high's share ${rows.highShare!.at(-1)!.toFixed(2)}`)
  }
  const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)]))
  const report = {
    peers: opts.peers,
    batchImages: opts.count,
    medians: m,
    smallSlowdown: m.smallBesideBatch! / m.smallAlone!,
    batchSlowdown: m.batchShared! / m.batchAlone!,
    equalGap: m.equalGap,
    highShare: m.highShare,
    runs: rows,
  }
  say(`small job (6 MP blur 2) beside a ${opts.count}-photo batch: ${report.smallSlowdown.toFixed(2)}x its time alone (target <= 2.5x); the batch ${report.batchSlowdown.toFixed(2)}x`)
  say(`two equal jobs (15 MP median 5) together: ${(100 * report.equalGap!).toFixed(0)}% apart (target <= 15%); high beside normal: share ${report.highShare!.toFixed(2)} (target >= 0.6)`)
  await writeFile(opts.out, JSON.stringify(report, null, 2) + '\n')
} finally {
  await Promise.all(peers.map(async p => await p.stop()))
  if (opts.logs !== undefined) await writePeerLogs(peers, opts.logs, 'share')
  await rm(work, { recursive: true, force: true })
}
