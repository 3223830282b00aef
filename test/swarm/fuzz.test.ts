import test from 'ava'
import fc from 'fast-check'
import { multiaddr } from '@multiformats/multiaddr'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster, until } from '../../sim/cluster.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import type { JobCoordinator } from '../../src/job/coordinator.ts'
import { createClientNode, createSwarmNode, type SwarmNode } from '../../src/net/node.ts'
import { JOBS_TOPIC, PEERS_TOPIC, PROTOCOL_VERSION, SUBMIT_PROTOCOL, TILE_PROTOCOL } from '../../src/protocol/constants.ts'
import { FramedChannel } from '../../src/protocol/framing.ts'
import { fixture, fixtureNames } from '../helpers/fixtures.ts'
import { noisePng, slowProcessor, swarmVersusLocal, tempDir } from '../helpers/swarm.ts'

/** Opens a stream and writes raw bytes, ignoring whatever happens to it. */
async function spray (rogue: SwarmNode, addr: string, protocol: string, chunks: Uint8Array[]): Promise<void> {
  try {
    const stream = await rogue.dialProtocol(multiaddr(addr), protocol, { signal: AbortSignal.timeout(3000) })
    // Wait for the writes to be taken; a peer that stops reading is cut off when the bound fires.
    const bound = AbortSignal.timeout(5000)
    const cut = (): void => { stream.abort(new Error('spray bounded')) }
    bound.addEventListener('abort', cut, { once: true })
    try {
      await stream.sink(chunks)
    } finally {
      bound.removeEventListener('abort', cut)
    }
    stream.abort(new Error('done'))
  } catch {}
}

/** A rogue worker's tile session, speaking well-framed messages of its choosing. */
async function rogueSession (rogue: SwarmNode, addr: string): Promise<{ ask: (header: Record<string, unknown>, body?: Uint8Array) => Promise<Record<string, unknown>>, flood: (n: number) => Promise<Array<Record<string, unknown>>>, close: () => void }> {
  const stream = await rogue.dialProtocol(multiaddr(addr), TILE_PROTOCOL, { signal: AbortSignal.timeout(3000) })
  const channel = new FramedChannel(stream, { maxBodyBytes: 1 << 26 })
  let rid = 0
  return {
    ask: async (header, body) => {
      await channel.send({ rid: ++rid, ...header }, body)
      for (;;) {
        const { header: reply } = await channel.receive({ timeoutMs: 5000 })
        if (reply.rid === rid) return reply
      }
    },
    // n claims sent at once, then n replies read by one reader.
    flood: async n => {
      for (let i = 0; i < n; i++) await channel.send({ rid: ++rid, type: 'claim' })
      const replies: Array<Record<string, unknown>> = []
      while (replies.length < n) replies.push((await channel.receive({ timeoutMs: 5000 })).header)
      return replies
    },
    close: () => { channel.abort(new Error('rogue done')) },
  }
}

test.serial('a rogue peer fuzzes every protocol and topic while a real job runs: no crash, the job is exact', async t => {
  const cluster = await Cluster.start(2, { keepLogs: true, leaseMs: 2000, process: slowProcessor(4) })
  const rogue = await createSwarmNode({ listen: ['/ip4/127.0.0.1/tcp/0'], heartbeatMs: 50 })
  try {
    const coordinator = cluster.peers[0]!
    const addr = coordinator.addrs()[0]!
    await rogue.dial(multiaddr(addr))
    const pubsub = rogue.services.pubsub
    pubsub.subscribe(JOBS_TOPIC)
    await until(() => pubsub.getSubscribers(JOBS_TOPIC).length > 0, [pubsub], ['subscription-change', 'gossipsub:heartbeat'], 10_000, 'rogue in the mesh')
    const dir = await tempDir()
    const jobStarted = new Promise<JobCoordinator>(resolve => coordinator.events.addEventListener('job', e => { resolve((e as CustomEvent<JobCoordinator>).detail) }, { once: true }))
    const real = swarmVersusLocal(coordinator, await noisePng(dir, 400, 400), 'blur:2,sobel', dir, 32)
    real.catch(() => {}) // awaited below; a failure before then must not count as unhandled
    const job = await jobStarted

    // Targeted abuse first: each must be refused and change nothing.
    const s = await rogueSession(rogue, addr)
    t.like(await s.ask({ type: 'join', v: PROTOCOL_VERSION, jobId: 'no-such-job' }), { type: 'error', name: 'JobFailedError' })
    const s2 = await rogueSession(rogue, addr)
    t.like(await s2.ask({ type: 'join', v: PROTOCOL_VERSION, jobId: job.jobId }), { type: 'job', jobId: job.jobId })
    const grant = await s2.ask({ type: 'claim' })
    t.is(grant.type, 'grant')
    const tile = grant.tile as number
    const checksum = '0'.repeat(8)
    t.like(await s2.ask({ type: 'result', phase: 0, tile: tile + 1, leaseId: grant.leaseId, checksum }, new Uint8Array(10)), { type: 'ack', status: 'rejected' })
    const wrongSize = await s2.ask({ type: 'result', phase: 0, tile, leaseId: grant.leaseId, checksum }, new Uint8Array(10))
    t.like(wrongSize, { type: 'ack', status: 'rejected' })
    t.regex(String(wrongSize.reason), /result is 10 bytes, expected \d+/)
    t.like(await s2.ask({ type: 'result', phase: 0, tile, leaseId: 'made-up-1', checksum }, new Uint8Array(10)), { type: 'ack', status: 'rejected' })
    const core = grant.core as { width: number, height: number }
    const badSum = await s2.ask({ type: 'result', phase: 0, tile, leaseId: grant.leaseId, checksum }, new Uint8Array(core.width * core.height))
    t.like(badSum, { type: 'ack', status: 'rejected' })
    t.regex(String(badSum.reason), /fails its checksum/)
    // A claim flood: answered, capped, and handed back when the rogue leaves.
    const flood = await s2.flood(100)
    t.true(flood.every(r => r.type === 'grant' || r.type === 'none'))
    t.true(job.leases.activeLeases().filter(l => l.peer === rogue.peerId.toString()).length <= job.leases.maxLeasesPerPeer)
    s2.close()
    s.close()

    // Then random bytes and random messages on every protocol and topic.
    await fc.assert(fc.asyncProperty(
      fc.oneof(
        fc.record({ where: fc.constantFrom(SUBMIT_PROTOCOL, TILE_PROTOCOL), bytes: fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 4 }) }),
        fc.record({ where: fc.constant('frames'), headers: fc.array(fc.oneof(fc.object(), fc.record({ type: fc.constantFrom('join', 'claim', 'result', 'renew', 'release', 'submit'), v: fc.integer(), rid: fc.integer(), jobId: fc.string(), bodyBytes: fc.integer() }, { requiredKeys: ['type'] })), { maxLength: 4 }) }),
        fc.record({ where: fc.constantFrom(JOBS_TOPIC, PEERS_TOPIC), gossip: fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.json().map(j => Buffer.from(j))) }),
      ),
      async input => {
        if ('bytes' in input) await spray(rogue, addr, input.where, input.bytes)
        else if ('headers' in input) {
          const chunks = input.headers.map(h => { const json = Buffer.from(JSON.stringify(h)); const frame = Buffer.concat([Buffer.from([0x48]), json]); return Buffer.concat([Buffer.from([frame.length < 128 ? frame.length : 0]), frame.length < 128 ? frame : Buffer.alloc(0)]) })
          await spray(rogue, addr, TILE_PROTOCOL, chunks)
        } else {
          await pubsub.publish(input.where, input.gossip).catch(() => {})
        }
        return coordinator.node.status === 'started'
      },
    ), { numRuns: 60 })

    const run = await real
    t.true(run.swarm.equals(run.local), 'the real job is exact')
    t.is(coordinator.node.status, 'started')
    t.true(process.memoryUsage().heapUsed < 1024 * 1024 * 1024)
  } finally {
    await rogue.stop()
    await cluster.stop()
  }
})

test.serial('a client that uploads slowly and stalls is dropped; another job carries on', async t => {
  const cluster = await Cluster.start(1, { keepLogs: true, uploadIdleMs: 500 })
  const client = await createClientNode()
  // The client stalls until the test is over.
  let release!: () => void
  const stalled = new Promise<void>(resolve => { release = resolve })
  try {
    const coordinator = cluster.peers[0]!
    const addr = coordinator.addrs()[0]!
    const stream = await client.dialProtocol(multiaddr(addr), SUBMIT_PROTOCOL)
    const channel = new FramedChannel(stream, { maxBodyBytes: 1 << 20 })
    // Announce a 1 MB upload, start it, then stall.
    const frame = (message: unknown): Buffer => {
      const json = Buffer.from(JSON.stringify(message))
      return Buffer.concat([Buffer.from([json.length + 1]), Buffer.from([0x48]), json])
    }
    void stream.sink((async function * () {
      yield frame({ type: 'submit', v: PROTOCOL_VERSION, ops: [{ op: 'invert' }], format: 'png', quality: 90, bytes: 1_000_000 })
      yield frame({ type: 'upload', bodyBytes: 1_000_000 })
      await stalled
    })()).catch(() => {})
    const dir = await tempDir()
    const other = await swarmVersusLocal(coordinator, fixture('low-contrast.jpg'), 'sobel', dir, 64)
    t.true(other.swarm.equals(other.local))
    const logs = cluster.logs.get(coordinator)!
    await until(() => logs.some(l => /refused: no answer within 500 ms/.test(l)), [coordinator.node.services.pubsub], ['gossipsub:heartbeat'], 10_000, 'the stalled upload to be dropped')
    t.pass()
    channel.abort(new Error('done'))
  } finally {
    release()
    await client.stop()
    await cluster.stop()
  }
})

test.serial('mutated fixture images through submit: a result or a one-line error each, and the peer stays up', async t => {
  const cluster = await Cluster.start(2, { maxPixels: 30_000_000 })
  try {
    const coordinator = cluster.peers[0]!
    const addr = coordinator.addrs()[0]!
    const dir = await tempDir()
    const sources = await Promise.all(fixtureNames().filter(n => n !== '65536-uint32-limit.png').slice(0, 8).map(async n => await readFile(fixture(n))))
    let outcomes = { ok: 0, refused: 0 }
    await fc.assert(fc.asyncProperty(
      fc.nat({ max: sources.length - 1 }), fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 20 }), fc.option(fc.nat(), { nil: undefined }),
      async (which, flips, cut) => {
        const bytes = Buffer.from(sources[which]!)
        // Headers are where decoders break: aim half the flips at the first 512 bytes.
        for (const [i, f] of flips.entries()) bytes[(i % 2 === 0 ? f.at % 512 : f.at) % bytes.length] = f.value
        const input = join(dir, 'mutant.bin')
        await writeFile(input, cut === undefined ? bytes : bytes.subarray(0, Math.max(1, cut % bytes.length)))
        try {
          await submitToSwarm(requestFromFlags({ ops: 'sobel', imagePath: input, out: join(dir, 'mutant.png') }), { peer: addr, tileSize: 256 })
          outcomes.ok++
        } catch (err) {
          const e = err as Error
          if (e.name !== 'JobFailedError' || e.message.includes('\n')) return false
          outcomes.refused++
        }
        return coordinator.node.status === 'started' && coordinator.submissions.activeJobs === 0
      },
    ), { numRuns: 40 })
    t.log(`mutants: ${outcomes.ok} processed, ${outcomes.refused} refused with one line`)
    const run = await swarmVersusLocal(coordinator, fixture('flowers.jpeg'), 'edge_detection', dir, 256)
    t.true(run.swarm.equals(run.local))
    outcomes = { ok: 0, refused: 0 }
  } finally {
    await cluster.stop()
  }
})
