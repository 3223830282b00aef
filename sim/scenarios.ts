import type { SwarmPeer } from '../src/swarm/peer.ts'
import type { Cluster } from './cluster.ts'
import { shortId } from '../src/common/log.ts'

export interface ScenarioContext {
  cluster: Cluster
  coordinator: SwarmPeer
  random: () => number
  leaseMs: number
  /** Resolves once this fraction of the job's tiles is placed. */
  reached: (fraction: number) => Promise<void>
  /** Resolves when the job is over (scenarios stop injecting then). */
  over: Promise<void>
  log: (line: string) => void
  /** Marks when the faults landed, for the recovery figure. */
  faultsAt: (ms: number) => void
  /** The liar scenario's share of its tiles sent back wrong. */
  lieShare: number
}

export interface Scenario {
  description: string
  /** Tiled jobs only: a batch's whole images are not checked. */
  tilesOnly?: boolean
  run: (ctx: ScenarioContext) => Promise<void>
}

/** A share of the workers (never the coordinator), picked by the seeded PRNG. */
function pick (ctx: ScenarioContext, share: number): SwarmPeer[] {
  const workers = ctx.cluster.live.filter(p => p !== ctx.coordinator)
  const n = Math.max(1, Math.floor(workers.length * share))
  const chosen: SwarmPeer[] = []
  while (chosen.length < n && workers.length > 0) chosen.push(workers.splice(Math.floor(ctx.random() * workers.length), 1)[0]!)
  return chosen
}

/**
 * A quarter of the workers get `fault` once the job reaches `fraction` (0:
 * from the start); the time is marked for the recovery figure when it is mid-job.
 */
function quarterAt (fraction: number, verb: string, fault: (ctx: ScenarioContext, peer: SwarmPeer) => Promise<void> | void) {
  return async (ctx: ScenarioContext): Promise<void> => {
    if (fraction > 0) await ctx.reached(fraction)
    const victims = pick(ctx, 0.25)
    if (fraction > 0) ctx.faultsAt(performance.now())
    ctx.log(`${verb} ${victims.length} peers`)
    await Promise.all(victims.map(async p => { await fault(ctx, p) }))
  }
}

export const SCENARIOS: Record<string, Scenario> = {
  baseline: {
    description: 'no faults',
    run: async () => {},
  },
  crash: {
    description: 'a quarter of the workers crash (connections cut, no goodbye) at 50%',
    run: quarterAt(0.5, 'crashing', async (ctx, p) => { await ctx.cluster.crash(p) }),
  },
  hang: {
    description: 'a quarter of the workers hang (hold leases, answer nothing) at 50%',
    run: quarterAt(0.5, 'hanging', (ctx, p) => { ctx.cluster.hang(p) }),
  },
  slow: {
    description: 'a quarter of the workers are 5x slower from the start',
    run: quarterAt(0, 'slowing 5x:', (ctx, p) => { ctx.cluster.slow(p, 5) }),
  },
  flaky: {
    description: 'a quarter of the workers drop one result stream in five halfway',
    run: quarterAt(0, 'making flaky:', (ctx, p) => { ctx.cluster.flaky(p, 0.2) }),
  },
  partition: {
    description: 'a quarter of the workers are cut off from the coordinator at 30% for twice the lease, then come back',
    run: async ctx => {
      await quarterAt(0.3, 'cutting off from the coordinator for two leases:', async (c, p) => { await c.cluster.partition(p, c.coordinator, 2 * c.leaseMs) })(ctx)
      ctx.log('partition healed')
    },
  },
  'coordinator-crash': {
    description: 'the coordinator crashes (connections cut, no goodbye) at 50%; the client resumes the job on another peer',
    run: async ctx => {
      await ctx.reached(0.5)
      ctx.faultsAt(performance.now())
      ctx.log('crashing the coordinator')
      await ctx.cluster.crash(ctx.coordinator)
    },
  },
  straggler: {
    description: 'a quarter of the workers are 100x slower from the start (alive, but crawling): idle peers copy their tiles at the end',
    run: quarterAt(0, 'slowing 100x:', (ctx, p) => { ctx.cluster.slow(p, 100) }),
  },
  liar: {
    description: 'one worker sends back a share of its tiles wrong (--lie-share, one bit flipped, its checksum right): the spot checks (--verify) must catch it',
    tilesOnly: true,
    run: async ctx => {
      const [liar] = pick(ctx, 0)
      if (liar === undefined) return
      ctx.log(`${shortId(liar.peerId)} lies on ${(ctx.lieShare * 100).toFixed(0)}% of its tiles`)
      ctx.cluster.lie(liar, ctx.lieShare)
    },
  },
  churn: {
    description: 'from 10% on, a worker leaves and a new peer joins every 150 ms (at most peers/2 times)',
    run: async ctx => {
      await ctx.reached(0.1)
      let over = false
      void ctx.over.then(() => { over = true })
      const rounds = Math.max(1, Math.floor(ctx.cluster.peers.length / 2))
      for (let i = 0; i < rounds && !over; i++) {
        const [leaving] = pick(ctx, 0)
        if (leaving !== undefined) await ctx.cluster.leave(leaving)
        await ctx.cluster.addPeer()
        await Promise.race([new Promise(resolve => setTimeout(resolve, 150)), ctx.over])
      }
      ctx.log(`churned ${rounds} times`)
    },
  },
}
