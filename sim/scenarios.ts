import type { SwarmPeer } from '../src/swarm/peer.ts'
import type { Cluster } from './cluster.ts'

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
}

export interface Scenario {
  description: string
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

export const SCENARIOS: Record<string, Scenario> = {
  baseline: {
    description: 'no faults',
    run: async () => {},
  },
  crash: {
    description: 'a quarter of the workers crash (connections cut, no goodbye) at 50%',
    run: async ctx => {
      await ctx.reached(0.5)
      const victims = pick(ctx, 0.25)
      ctx.faultsAt(performance.now())
      ctx.log(`crashing ${victims.length} peers`)
      await Promise.all(victims.map(async p => { await ctx.cluster.crash(p) }))
    },
  },
  hang: {
    description: 'a quarter of the workers hang (hold leases, answer nothing) at 50%',
    run: async ctx => {
      await ctx.reached(0.5)
      const victims = pick(ctx, 0.25)
      ctx.faultsAt(performance.now())
      ctx.log(`hanging ${victims.length} peers`)
      for (const p of victims) ctx.cluster.hang(p)
    },
  },
  slow: {
    description: 'a quarter of the workers are 5x slower from the start',
    run: async ctx => {
      const victims = pick(ctx, 0.25)
      ctx.log(`slowing ${victims.length} peers 5x`)
      for (const p of victims) ctx.cluster.slow(p, 5)
    },
  },
  flaky: {
    description: 'a quarter of the workers drop one result stream in five halfway',
    run: async ctx => {
      const victims = pick(ctx, 0.25)
      ctx.log(`making ${victims.length} peers flaky`)
      for (const p of victims) ctx.cluster.flaky(p, 0.2)
    },
  },
  partition: {
    description: 'a quarter of the workers are cut off from the coordinator at 30% for twice the lease, then come back',
    run: async ctx => {
      await ctx.reached(0.3)
      const victims = pick(ctx, 0.25)
      ctx.faultsAt(performance.now())
      ctx.log(`partitioning ${victims.length} peers from the coordinator for ${2 * ctx.leaseMs} ms`)
      await Promise.all(victims.map(async p => { await ctx.cluster.partition(p, ctx.coordinator, 2 * ctx.leaseMs) }))
      ctx.log('partition healed')
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
