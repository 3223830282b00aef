import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeImage, processTile, type PixelFormat, type RawImage, type Tile, type TileWork, type Gate } from '../../src/imaging/index.ts'
import { runLocal } from '../../src/client/local.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import type { JobCoordinator } from '../../src/job/coordinator.ts'
import type { SwarmPeer } from '../../src/swarm/peer.ts'
import type { TileProcessor } from '../../src/worker/tile-lane.ts'
import { noiseImage } from './images.ts'
import { Cluster, type ClusterOptions } from '../../sim/cluster.ts'

/** A cluster and a temporary folder for one test; the cluster is stopped however the test ends. */
export async function withCluster (n: number, options: ClusterOptions, run: (cluster: Cluster, dir: string) => Promise<void>): Promise<void>
export async function withCluster (n: number, run: (cluster: Cluster, dir: string) => Promise<void>): Promise<void>
export async function withCluster (n: number, a: ClusterOptions | ((cluster: Cluster, dir: string) => Promise<void>), b?: (cluster: Cluster, dir: string) => Promise<void>): Promise<void> {
  const [options, run] = typeof a === 'function' ? [{}, a] : [a, b!]
  const cluster = await Cluster.start(n, options)
  try {
    await run(cluster, await tempDir())
  } finally {
    await cluster.stop()
  }
}

/** Real processing of the first `free` tiles it is given, then each waits for `released`: a job held running while a test looks at it. */
export function heldAfter (free: number, released: Promise<void>): TileProcessor {
  let started = 0
  return async (pixels, tile, work) => {
    if (++started > free) await released
    return await processTile(pixels, tile, work)
  }
}

/**
 * A cluster of `n` peers where every peer but the `watched` one waits before
 * each tile until the test says `go`: so the peer a test watches surely gets
 * work, however the machine's load would share the tiles out.
 */
export async function withWatchedCluster (n: number, watched: number, options: ClusterOptions & { process: TileProcessor }, run: (cluster: Cluster, dir: string, go: () => void) => Promise<void>): Promise<void> {
  const { promise: going, resolve: go } = Promise.withResolvers<void>()
  const waiting: TileProcessor = async (...args) => {
    await going
    return await options.process(...args)
  }
  const cluster = new Cluster(options)
  try {
    for (let i = 0; i < n; i++) await cluster.addPeer({ process: i === watched ? options.process : waiting })
    await cluster.waitForMesh()
    await run(cluster, await tempDir(), go)
  } finally {
    go()
    await cluster.stop()
  }
}

export async function tempDir (): Promise<string> {
  return await mkdtemp(join(tmpdir(), 'tileswarm-swarm-'))
}

/** A noise PNG on disk: every pixel differs, so any tiling mistake shows. */
export async function noisePng (dir: string, width: number, height: number, format: PixelFormat = { channels: 3, depth: 8 }, seed = 1): Promise<string> {
  const path = join(dir, `noise-${width}x${height}-${format.channels}-${format.depth}-${seed}.png`)
  await writeFile(path, await encodeImage(noiseImage(width, height, format, seed), { format: 'png' }))
  return path
}

/** Real processing that takes at least `ms` per tile: gives faults a window to land in. */
export function slowProcessor (ms: number) {
  return async (pixels: RawImage, tile: Tile, work: TileWork, gate: Gate): Promise<RawImage | Uint8Array> => {
    const [out] = await Promise.all([processTile(pixels, tile, work), gate(async () => await new Promise(resolve => setTimeout(resolve, ms)))])
    return out
  }
}

/** Counts placements per tile on every job `peer` coordinates. */
export function trackPlacements (peer: SwarmPeer, onPlaced?: (tile: number, by: string, job: JobCoordinator) => void): Map<number, number> {
  const counts = new Map<number, number>()
  peer.events.addEventListener('job', evt => {
    const job = (evt as CustomEvent<JobCoordinator>).detail
    job.on('placed', (tile, by) => {
      counts.set(tile, (counts.get(tile) ?? 0) + 1)
      onPlaced?.(tile, by, job)
    })
  })
  return counts
}

/**
 * Strikes `victim` once, mid-job: when it has placed a tile on `coordinator`
 * and holds leases still. Returns the placement counts and whether it struck.
 */
export function strikeMidJob (coordinator: SwarmPeer, victim: SwarmPeer, strike: () => void): { counts: Map<number, number>, struck: () => boolean } {
  let struck = false
  const counts = trackPlacements(coordinator, (_tile, by) => {
    if (by === victim.peerId && !struck && victim.worker.heldLeases > 0) {
      struck = true
      strike()
    }
  })
  return { counts, struck: () => struck }
}

export interface SwarmRun {
  swarm: Buffer
  local: Buffer
  done: Awaited<ReturnType<typeof submitToSwarm>>
}

/** Submits to `peer` and runs the same request locally; both outputs come back. */
export async function swarmVersusLocal (peer: SwarmPeer, input: string, ops: string, dir: string, tileSize?: number, name = 'out', ext = 'png'): Promise<SwarmRun> {
  const swarmOut = join(dir, `${name}-swarm.${ext}`)
  const localOut = join(dir, `${name}-local.${ext}`)
  const done = await submitToSwarm(requestFromFlags({ ops, imagePath: input, out: swarmOut }), { peer: peer.addrs()[0]!, tileSize })
  await runLocal(requestFromFlags({ ops, imagePath: input, out: localOut }))
  return { swarm: await readFile(swarmOut), local: await readFile(localOut), done }
}
