/**
 * npm run bench:resume: a job whose coordinator goes mid-job, as issue 30
 * measures it, on peers as processes (1 slot each, --spread always).
 * - Canny on a stretched photo, its coordinator SIGKILLed halfway through
 *   its last phase: its time against the same job uninterrupted (each on a
 *   fresh swarm), and what the resumed job collected of each phase;
 * - a one-phase job, its coordinator SIGTERMed halfway: whether any tile was
 *   computed twice (the tiles finished before the leave against those the
 *   resumed job collected).
 * Every output is checked against the uninterrupted job's. Writes
 * bench-resume.json.
 */
import { spawn } from 'node:child_process'
import { Command } from 'commander'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import sharp from 'sharp'
import { integerOption } from '../src/cli/args.ts'
import { PEER_JS, REPO, startLoopbackSwarm, writePeerLogs, type PeerProcess } from './processes.ts'

const opts = new Command('bench:resume')
  .description('a job whose coordinator is killed (SIGKILL, last phase) or leaves (SIGTERM) halfway: time against uninterrupted, tiles collected')
  .option('--peers <n>', 'peers, 1 slot each', integerOption('--peers', 3, 16), 3)
  .option('--mp <n>', 'megapixels of the Canny job\'s photo', integerOption('--mp', 1, 400), 100)
  .option('--one-phase-mp <n>', 'megapixels of the one-phase job\'s photo', integerOption('--one-phase-mp', 1, 400), 24)
  .option('--out <file>', 'where the JSON goes', resolve(REPO, 'bench-resume.json'))
  .option('--logs <dir>', 'write each swarm\'s peer logs here (RUN-peer-I.log): where a resumed job\'s time goes')
  .parse()
  .opts<{ peers: number, mp: number, onePhaseMp: number, out: string, logs?: string }>()

const say = (line: string): void => { process.stderr.write(line + '\n') }
const work = join(tmpdir(), `tileswarm-resume-bench-${process.pid}`)
let peers: PeerProcess[] = []
/** The swarm now running, by name. */
let running = ''

type Event = Record<string, unknown> & { event: string }

/** A fresh swarm of `opts.peers` processes. */
async function swarm (name: string): Promise<void> {
  await Promise.all(peers.map(async p => await p.stop('SIGKILL')))
  await keepLogs()
  peers = []
  running = name
  await startLoopbackSwarm(opts.peers, { dataRoot: join(work, name), args: ['--slots', '1', '--spread', 'always'], into: peers })
}

/** The running swarm's peer logs, into --logs. */
async function keepLogs (): Promise<void> {
  if (opts.logs !== undefined && peers.length > 0) await writePeerLogs(peers, opts.logs, running)
}

/** One submit to the first peer, with --json; `onEvent` sees each event as it comes. Its time, and its events. */
async function submit (input: string, ops: string, output: string, onEvent: (e: Event) => void = () => {}): Promise<{ s: number, events: Event[] }> {
  const started = performance.now()
  const child = spawn(process.execPath, [PEER_JS, 'submit', '--json', '--peer', peers[0]!.addr, ...peers.slice(1).flatMap(p => ['--peer', p.addr]), '--ops', ops, '-i', input, '-o', output], { stdio: ['ignore', 'pipe', 'pipe'] })
  const events: Event[] = []
  createInterface({ input: child.stdout }).on('line', line => {
    if (!line.startsWith('{')) return
    const e = JSON.parse(line) as Event
    events.push(e)
    onEvent(e)
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>(resolve => child.on('exit', resolve))
  if (code !== 0) throw new Error(`submit ${ops} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' ')} ${JSON.stringify(events.at(-1))}`)
  return { s: (performance.now() - started) / 1000, events }
}

/** The job run uninterrupted, then again with its coordinator struck by `signal` once `at(done, total, accepted)` says so. */
async function measure (input: string, ops: string, signal: NodeJS.Signals, at: (done: number, accepted: Event) => boolean) {
  await swarm(`${ops}-whole`)
  const whole = await submit(input, ops, join(work, 'whole.png'))
  await swarm(`${ops}-struck`)
  let accepted: Event | undefined
  let struckAt: number | undefined
  const struck = await submit(input, ops, join(work, 'struck.png'), e => {
    if (e.event === 'accepted') accepted = e
    if (e.event !== 'progress' || struckAt !== undefined || accepted === undefined) return
    if (!at(e.done as number, accepted)) return
    struckAt = e.done as number
    peers[0]!.child.kill(signal)
  })
  const exact = (await readFile(join(work, 'whole.png'))).equals(await readFile(join(work, 'struck.png')))
  if (!exact) throw new Error(`${ops}: the output with the coordinator ${signal} differs from the uninterrupted one`)
  const recovered = struck.events.filter(e => e.event === 'recovered')
  const done = struck.events.find(e => e.event === 'done') as { leases: Record<string, number>, verify?: { extra: number } } | undefined
  return { wholeS: whole.s, struckS: struck.s, ratio: struck.s / whole.s, struckAtDone: struckAt, accepted: { tiles: accepted?.tiles, phases: accepted?.phases }, recovered: recovered.map(r => ({ phase: (r.phase as number | undefined) ?? 0, tiles: r.tiles as number, total: r.total as number })), resumedLeases: done?.leases, resumedExtra: done?.verify?.extra ?? 0 }
}

try {
  await mkdir(work, { recursive: true })
  const photo = async (mp: number): Promise<string> => {
    const path = join(work, `photo-${mp}mp.jpg`)
    const width = Math.round(Math.sqrt(mp * 1e6 * 3 / 2))
    await sharp(resolve(REPO, 'sim/samples/saw.jpg')).resize(width, Math.round(width * 2 / 3), { fit: 'fill' }).jpeg({ quality: 90 }).toFile(path)
    return path
  }
  say(`Canny on a ${opts.mp} MP photo, ${opts.peers} peers: uninterrupted, then the coordinator SIGKILLed halfway through the last phase`)
  const canny = await measure(await photo(opts.mp), 'canny', 'SIGKILL', (done, a) => done >= (a.tiles as number) * ((a.phases as number) - 0.5))
  say(`  ${canny.wholeS.toFixed(2)} s uninterrupted, ${canny.struckS.toFixed(2)} s struck: ${canny.ratio.toFixed(2)}x (target <= 1.2x); collected ${canny.recovered.map(r => `${r.tiles} of ${r.total} (phase ${r.phase + 1})`).join(', ')}`)
  say(`median:size=3 on a ${opts.onePhaseMp} MP photo, ${opts.peers} peers: the coordinator SIGTERMed halfway`)
  const onePhase = await measure(await photo(opts.onePhaseMp), 'median:size=3', 'SIGTERM', (done, a) => done >= (a.tiles as number) / 2)
  const collected = onePhase.recovered[0]?.tiles ?? 0
  const computedAgain = Math.max(0, (onePhase.struckAtDone ?? 0) - collected)
  say(`  ${onePhase.wholeS.toFixed(2)} s uninterrupted, ${onePhase.struckS.toFixed(2)} s with the leave: ${onePhase.ratio.toFixed(2)}x; ${onePhase.struckAtDone} tiles done at the leave, ${collected} collected: ${computedAgain} computed twice (target 0)`)
  await writeFile(opts.out, JSON.stringify({ peers: opts.peers, canny: { mp: opts.mp, ...canny }, onePhase: { mp: opts.onePhaseMp, ...onePhase, computedTwice: computedAgain } }, null, 2) + '\n')
} finally {
  await Promise.all(peers.map(async p => await p.stop('SIGKILL')))
  await keepLogs()
  await rm(work, { recursive: true, force: true })
}
