/**
 * The bench's swarms: peers as processes, and jobs sent to them by a fresh
 * client process each (`tileswarm submit`, what a user runs), with the CPU of
 * every process the job touched.
 */
import { join } from 'node:path'
import { PEER_JS, startPeerProcess, type PeerProcess } from '../processes.ts'
import { cpuSince, processCpu, timedRun, type ThreadKind } from './measure.ts'

export interface JobRun {
  wallS: number
  /** CPU of every process: the client, and each peer by its threads. */
  cpu: { client: number, peers: Array<{ all: number, threads: Record<ThreadKind, number> }>, all: number }
  /** From the client's --json 'done' event. */
  tiles: number
  tilesByPeer: Record<string, number>
  extraComputations: number
  /** How the coordinator ran it: tiled, or as one pipeline. */
  tiled: boolean
}

export class Swarm {
  readonly name: string
  readonly peers: PeerProcess[]
  /** The program the peers and clients run: the bundled CLI, or (profiled) its sources, whose profiles name their modules. */
  private readonly script: string
  private readonly env: NodeJS.ProcessEnv | undefined

  private constructor (name: string, peers: PeerProcess[], script: string, env?: NodeJS.ProcessEnv) {
    this.name = name
    this.peers = peers
    this.script = script
    this.env = env
  }

  /** `n` peers of one slot each, bootstrapped to the first; results not kept (each rep computes its job). `env` goes to the clients too. */
  static async start (name: string, n: number, dir: string, env?: NodeJS.ProcessEnv, script = PEER_JS): Promise<Swarm> {
    const peers: PeerProcess[] = []
    const args = (i: number): string[] => ['--listen', '/ip4/127.0.0.1/tcp/0', '--slots', '1', '--result-cache-mb', '0', '--data-dir', join(dir, `${name}-${i}`), ...(i > 0 ? ['--bootstrap', peers[0]!.addr] : [])]
    try {
      for (let i = 0; i < n; i++) peers.push(await startPeerProcess(`${name} ${i}`, args(i), { script, ...(env !== undefined ? { env } : {}) }))
      await Promise.all(peers.slice(1).map(async p => await p.waitFor(/peer joined/, 15_000)))
    } catch (err) {
      await Promise.all(peers.map(async p => await p.stop()))
      throw err
    }
    return new Swarm(name, peers, script, env)
  }

  /** One job through the first peer, by a fresh client process. */
  async run (input: string, ops: string, output: string, extra: string[] = []): Promise<JobRun> {
    const before = this.peers.map(p => processCpu(p.child.pid!))
    const timed = await timedRun([process.execPath, this.script, 'submit', '--peer', this.peers[0]!.addr, '--ops', ops, '-i', input, '-o', output, '--json', ...extra], { ...(this.env !== undefined ? { env: this.env } : {}) })
    const peers = this.peers.map((p, i) => cpuSince(before[i]!, p.child.pid!))
    const done = timed.stdout.trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>).find(e => e.event === 'done')
    if (done === undefined) throw new Error(`no done event from submit: ${timed.stderr}`)
    const tilesByPeer = done.tilesByPeer as Record<string, number>
    const leases = done.leases as { granted: number }
    const verify = done.verify as { extra?: number } | undefined
    return {
      wallS: timed.wallS,
      cpu: { client: timed.cpuS, peers, all: timed.cpuS + peers.reduce((a, p) => a + p.all, 0) },
      tiles: Object.values(tilesByPeer).reduce((a, b) => a + b, 0),
      tilesByPeer,
      extraComputations: verify?.extra ?? 0,
      tiled: leases.granted > 0,
    }
  }

  async stop (): Promise<void> {
    await Promise.all(this.peers.map(async p => await p.stop()))
  }
}
