/**
 * The bench's figures beside the main table: where the extra CPU goes (from
 * profiles and threads), how many hosts one coordinator keeps busy, the fixed
 * costs of a small job, and memory.
 */
import { readdirSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import sharp from 'sharp'
import { PEER_JS, REPO } from '../processes.ts'
import { cpuSince, median, memoryMb, processCpu, timedRun } from './measure.ts'
import { addKinds, profileKinds } from './profile.ts'
import { Swarm, type JobRun } from './swarm.ts'
import type { PeerProcess } from '../processes.ts'

/** sharp's own pipeline at one thread on an image, and what its decode and its encode alone cost: CPU seconds. */
export interface Parts { pipelineS: number, decodeS: number, encodeS: number }

const node = process.execPath
const round = (x: number, digits = 3): number => Number(x.toFixed(digits))

/**
 * Where a 2-peer job's CPU goes, against sharp's pipeline: the client; the
 * peers' libvips threads (decode and encode once, the operation in tiles with
 * their halos, set-up and checks); their JavaScript threads by kind of work
 * (from --cpu-prof); V8's helper threads.
 */
export async function breakdown (input: string, ops: Array<{ op: string, ops: string, ext: string, parts?: Parts, run?: JobRun }>, dir: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for (const { op, ops: pipeline, ext, parts, run } of ops) {
    if (run === undefined) continue
    const profiles = join(dir, `profiles-${op}`)
    await mkdir(profiles, { recursive: true })
    const env = { ...process.env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profiles}` }
    // From the sources, not the bundle: a profile then names each frame's module.
    const swarm = await Swarm.start(`prof-${op}`, 2, dir, env, resolve(REPO, 'src/peer.ts'))
    let job: JobRun
    try {
      job = await swarm.run(input, pipeline, join(dir, `prof.${ext}`))
    } finally {
      await swarm.stop()
    }
    // Each process's profile, by its pid: the peers' lifetimes (start-up aside below), the client's whole run.
    const files = readdirSync(profiles).map(f => join(profiles, f))
    const byPid = (pid: number): string[] => files.filter(f => f.includes(`.${pid}.`))
    const peerKinds = addKinds(swarm.peers.flatMap(p => byPid(p.child.pid!)).map(profileKinds))
    const clientKinds = addKinds(files.filter(f => !swarm.peers.some(p => f.includes(`.${p.child.pid!}.`))).map(profileKinds))
    delete peerKinds.idle
    delete peerKinds['module loading and compiling']
    delete clientKinds.idle
    const pool = run.cpu.peers.reduce((a, p) => a + p.threads.pool, 0)
    const nativeOp = parts !== undefined ? parts.pipelineS - parts.decodeS - parts.encodeS : undefined
    out[op] = {
      anchorCpuS: parts?.pipelineS,
      jobCpuS: round(run.cpu.all),
      client: { cpuS: round(run.cpu.client), profileMs: Object.fromEntries(Object.entries(clientKinds).map(([k, v]) => [k, Math.round(v)])) },
      libvipsThreads: {
        cpuS: round(pool),
        decodeOnceS: parts?.decodeS,
        encodeOnceS: parts?.encodeS,
        operationInTilesS: parts !== undefined ? round(pool - parts.decodeS - parts.encodeS) : undefined,
        operationAsOnePipelineS: nativeOp !== undefined ? round(nativeOp) : undefined,
        extraComputations: run.extraComputations,
      },
      javascriptThreads: { cpuS: round(run.cpu.peers.reduce((a, p) => a + p.threads.main, 0)), profileMs: Object.fromEntries(Object.entries(peerKinds).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, Math.round(v)])) },
      v8HelperThreadsS: round(run.cpu.peers.reduce((a, p) => a + p.threads.v8, 0)),
      profiledJob: { tiled: job.tiled, tiles: job.tiles },
    }
  }
  return out
}

/**
 * One coordinator's own CPU per tile (its JavaScript thread: grants, pixels
 * out and in, checks, placement) and per batch image, against what a tile or
 * an image takes to compute: the hosts it can keep busy.
 */
export async function coordinatorLoad (two: Swarm, runs: Map<string, JobRun>, parts: Map<string, Parts>, dir: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for (const [key, run] of runs) {
    const [image, op, config] = key.split('/')
    const p = parts.get(`${image}/${op}`)
    if (config !== '2 peers' || !run.tiled || p === undefined || op !== 'median') continue
    const perTileS = run.cpu.peers[0]!.threads.main / run.tiles
    const computeS = (p.pipelineS - p.decodeS - p.encodeS) / run.tiles
    out[`${image} ${op}`] = { tiles: run.tiles, coordinatorMsPerTile: round(perTileS * 1000, 2), tileComputeMs: round(computeS * 1000, 1), hostsKeptBusy: Math.floor(computeS / perTileS) }
  }
  // A batch: 24 photos of 2 MP, each one task.
  const folder = join(dir, 'batch')
  await mkdir(folder, { recursive: true })
  for (let i = 0; i < 24; i++) await sharp(resolve(REPO, 'sim/samples/saw.jpg')).resize(1800, 1100 + i, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(join(folder, `p${i}.jpg`))
  const coordinator = two.peers[0]!
  const before = processCpu(coordinator.child.pid!)
  await timedRun([node, PEER_JS, 'submit', '--peer', coordinator.addr, '--ops', 'blur:sigma=2', '-i', folder, '-o', join(dir, 'batch-out')])
  const used = cpuSince(before, coordinator.child.pid!)
  const one = await timedRun([node, resolve(REPO, 'sim/bench/native.ts'), 'blur:sigma=3', join(folder, 'p0.jpg'), join(dir, 'b.jpg'), '1'])
  const imageS = (JSON.parse(one.stdout) as { cpuS: number }).cpuS
  out.batch = { images: 24, coordinatorMsPerImage: round(used.threads.main / 24 * 1000, 2), imageComputeMs: round(imageS * 1000, 1), hostsKeptBusy: Math.floor(imageS / (used.threads.main / 24)) }
  return out
}

/** A 64x64 job end to end (a fresh client process) against a fresh node running sharp's pipeline on it; and the client's start alone. */
export async function fixedCosts (one: Swarm, dir: string): Promise<{ submitMs: number, sharpMs: number, ratio: number, versionMs: number }> {
  const tiny = join(dir, 'tiny.jpg')
  await sharp(resolve(REPO, 'sim/samples/saw.jpg')).resize(64, 64, { fit: 'fill' }).jpeg({ quality: 90 }).toFile(tiny)
  const runs = { submit: [] as number[], sharp: [] as number[], version: [] as number[] }
  for (let rep = 0; rep < 7; rep++) {
    runs.submit.push((await timedRun([node, PEER_JS, 'submit', '--peer', one.peers[0]!.addr, '-i', tiny, '-o', join(dir, 'tiny-out.jpg'), '--ops', 'blur:sigma=3'])).wallS)
    runs.sharp.push((await timedRun([node, '--input-type=module', '-e', `import sharp from 'sharp'; await sharp(${JSON.stringify(tiny)}).blur(3).jpeg({ quality: 90 }).toFile(${JSON.stringify(join(dir, 'tiny-sharp.jpg'))})`], { cwd: REPO })).wallS)
    runs.version.push((await timedRun([node, PEER_JS, '--version'])).wallS)
  }
  const submitMs = median(runs.submit) * 1000
  const sharpMs = median(runs.sharp) * 1000
  return { submitMs: Math.round(submitMs), sharpMs: Math.round(sharpMs), ratio: round(submitMs / sharpMs, 2), versionMs: Math.round(median(runs.version) * 1000) }
}

export function idleMemory (peers: PeerProcess[]): number[] {
  return peers.map(p => Math.round(memoryMb(p.child.pid!).rss))
}

/** A fresh pair of peers, one 100 MP median job: the coordinator's peak RSS against the raw image. */
export async function peakMemory (input: string, dir: string): Promise<{ coordinatorPeakMb: number, workerPeakMb: number, rawMb: number, overRaw: number }> {
  const { width, height } = await sharp(input, { limitInputPixels: false }).metadata()
  const rawMb = width! * height! * 3 / 1024 / 1024
  const pair = await Swarm.start('mem', 2, dir)
  try {
    await pair.run(input, 'median:size=5', join(dir, 'mem.jpg'))
    const [c, w] = pair.peers.map(p => memoryMb(p.child.pid!).peak) as [number, number]
    return { coordinatorPeakMb: Math.round(c), workerPeakMb: Math.round(w), rawMb: Math.round(rawMb), overRaw: round(c / rawMb, 2) }
  } finally {
    await pair.stop()
  }
}
