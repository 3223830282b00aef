import test from 'ava'
import { join } from 'node:path'
import { Cluster, until } from '../../sim/cluster.ts'
import { runPeerJs as runCli, startPeerProcess } from '../../sim/processes.ts'
import { SwarmPeer } from '../../src/swarm/peer.ts'
import { createSwarmNode } from '../../src/net/node.ts'
import { JOBS_TOPIC, PEERS_TOPIC, PROTOCOL_VERSION, TILE_PROTOCOL } from '../../src/protocol/constants.ts'
import { swarmVersusLocal, tempDir } from '../helpers/swarm.ts'
import { fixture } from '../helpers/fixtures.ts'
import { peerIdFromString } from '@libp2p/peer-id'
import type { GossipSub } from '@chainsafe/libp2p-gossipsub'

test.serial('peers bootstrapped to one node find each other through the swarm', async t => {
  const cluster = await Cluster.start(3)
  try {
    const [, b, c] = cluster.peers as [SwarmPeer, SwarmPeer, SwarmPeer]
    const cId = peerIdFromString(c.peerId)
    await until(() => b.node.getConnections(cId).length > 0, [b.node], ['peer:connect'], 10_000, 'b to connect to c')
    t.pass()
  } finally {
    await cluster.stop()
  }
})

test.serial('the data dir keeps the peer id; a second peer on it is refused', async t => {
  const dir = join(await tempDir(), 'peer')
  const first = await SwarmPeer.start({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], dataDir: dir })
  const id = first.peerId
  await t.throwsAsync(SwarmPeer.start({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], dataDir: dir }), { name: 'DataDirError', message: /another peer \(pid \d+\) is using/ })
  await first.stop()
  const again = await SwarmPeer.start({ listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], dataDir: dir })
  t.is(again.peerId, id)
  await again.stop()
})

test.serial('a peer process prints its addresses and exits 0 on SIGTERM and on SIGINT', async t => {
  const dir = await tempDir()
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const peer = await startPeerProcess('p', ['--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(dir, signal)])
    t.regex(peer.addr, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW\w+$/)
    t.is(await peer.stop(signal), 0)
    t.true(peer.lines.some(l => l.includes(`${signal}: handing back 0 leases`)))
  }
})

test.serial('a second peer on a port in use: one line naming that port', async t => {
  const dir = await tempDir()
  const first = await startPeerProcess('p', ['--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(dir, 'a')])
  try {
    const port = first.addr.split('/')[4]!
    const r = await runCli(['--listen', '/ip4/127.0.0.1/tcp/0', '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--data-dir', join(dir, 'b')], { timeoutMs: 20_000 })
    t.is(r.code, 1)
    t.is(r.stderr, `tileswarm: cannot listen on 127.0.0.1:${port}: the address is in use (another peer on this port?); give --listen another port, or /tcp/0 for any free one\n`)
  } finally {
    await first.stop()
  }
})

/** A node of our own build that joins `target`'s gossip mesh, to misbehave in it. */
/** The gossipsub router itself: its scores and mesh, which the PubSub interface does not show. */
const router = (peer: SwarmPeer): GossipSub => peer.node.services.pubsub as unknown as GossipSub

async function rogueIn (target: SwarmPeer): Promise<Awaited<ReturnType<typeof createSwarmNode>>> {
  const rogue = await createSwarmNode({ listen: ['/ip4/127.0.0.1/tcp/0'], heartbeatMs: 50 })
  const { multiaddr } = await import('@multiformats/multiaddr')
  await rogue.dial(multiaddr(target.addrs()[0]!), { signal: AbortSignal.timeout(5000) })
  rogue.services.pubsub.subscribe(JOBS_TOPIC)
  rogue.services.pubsub.subscribe(PEERS_TOPIC)
  await until(() => rogue.services.pubsub.getSubscribers(JOBS_TOPIC).length > 0 && router(target).getMeshPeers(JOBS_TOPIC).includes(rogue.peerId.toString()),
    [rogue.services.pubsub, target.node.services.pubsub], ['subscription-change', 'gossipsub:heartbeat'], 10_000, 'the rogue in the mesh')
  return rogue
}

/** Waits out `beats` heartbeats of `peer`'s gossip (bounded): what did not arrive by then is not coming. */
async function heartbeats (peer: SwarmPeer, beats: number): Promise<void> {
  // Checked once at the start, then once a heartbeat.
  let checks = 0
  await until(() => checks++ > beats, [peer.node.services.pubsub], ['gossipsub:heartbeat'], 10_000, `${beats} heartbeats`)
}

test.serial('gossip hygiene: a peer whose messages fail validation is scored down, pruned from the mesh and graylisted (its later messages are dropped); one that floods is ignored past its rate', async t => {
  const cluster = await Cluster.start(1, { keepLogs: true })
  try {
    const target = cluster.peers[0]!
    const gossip = router(target)
    const rogue = await rogueIn(target)
    try {
      const pubsub = rogue.services.pubsub
      const id = rogue.peerId.toString()
      const announce = (jobId: string): Buffer => Buffer.from(JSON.stringify({ type: 'announce', v: PROTOCOL_VERSION, jobId, jobKey: 'a'.repeat(64), kind: 'tiles', coordinator: id, addrs: [], tiles: 9, pending: 9, done: 0, leaseMs: 1000 }))
      // Well-formed: taken.
      await pubsub.publish(JOBS_TOPIC, announce('before'))
      await until(() => target.status().jobs.some(j => j.jobId === 'before'), [gossip], ['gossipsub:heartbeat'], 10_000, 'the first announcement')
      t.true(gossip.getScore(id) > -10)
      // Three that fail validation: below the graylist, out of the mesh.
      for (const bad of ['{not json', '[]', JSON.stringify({ type: 'announce', v: PROTOCOL_VERSION })]) await pubsub.publish(JOBS_TOPIC, Buffer.from(bad))
      // gossipsub trusts a peer that scored well for a second (or 128 messages) before it looks again: waited out.
      const trusted = (gossip as unknown as { acceptFromWhitelist: Map<string, { acceptUntil: number }> }).acceptFromWhitelist
      await until(() => gossip.getScore(id) < -80 && !gossip.getMeshPeers(JOBS_TOPIC).includes(id) && (trusted.get(id)?.acceptUntil ?? 0) < Date.now(),
        [gossip], ['gossipsub:heartbeat'], 10_000, 'the rogue graylisted and pruned')
      await pubsub.publish(JOBS_TOPIC, announce('after'))
      await heartbeats(target, 10)
      t.false(target.status().jobs.some(j => j.jobId === 'after'), 'a graylisted peer\'s message is dropped')
    } finally {
      await rogue.stop()
    }
    // A flood of valid messages: past the rate, ignored, and said once.
    const flooder = await rogueIn(target)
    try {
      const id = flooder.peerId.toString()
      for (let i = 0; i < 300; i++) {
        await flooder.services.pubsub.publish(PEERS_TOPIC, Buffer.from(JSON.stringify({ type: 'hello', v: PROTOCOL_VERSION, peerId: id, addrs: [], slots: 1, up: 0, done: i })))
      }
      const logs = cluster.logs.get(target)!
      await until(() => logs.some(l => l.startsWith(`ignoring gossip from ${id.slice(-8)}: over `)), [gossip], ['gossipsub:heartbeat'], 10_000, 'the flood to be named')
      t.is(logs.filter(l => l.startsWith(`ignoring gossip from ${id.slice(-8)}`)).length, 1, 'named once')
      t.true(gossip.getScore(id) > -10, 'a flood of valid messages is ignored, not penalised: a relay may carry it')
      const dir = await tempDir()
      const run = await swarmVersusLocal(target, fixture('low-contrast.jpg'), 'sobel', dir, 64)
      t.true(run.swarm.equals(run.local))
    } finally {
      await flooder.stop()
    }
  } finally {
    await cluster.stop()
  }
})

test.serial('a peer sizes its libuv pool to --slots and one for the jobs it coordinates, in either spelling, unless told otherwise', async t => {
  const dir = await tempDir()
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'UV_THREADPOOL_SIZE'))
  const cases: Array<[string[], NodeJS.ProcessEnv, number]> = [
    [['--slots', '3'], env, 4],
    [['--slots=1'], env, 2],
    [['--slots', '2'], { ...env, UV_THREADPOOL_SIZE: '7' }, 7],
    [[], { ...env, TILESWARM_SLOTS: '3' }, 4],
  ]
  for (const [i, [args, childEnv, pool]] of cases.entries()) {
    const peer = await startPeerProcess('p', ['--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(dir, String(i)), ...args], { env: childEnv })
    const up = await peer.waitFor(/ up: /, 10_000)
    await peer.stop()
    t.regex(up, new RegExp(`libuv pool of ${pool}\\)`), up)
  }
})

test.serial('garbage on every topic and on the tile protocol is ignored and logged; jobs carry on', async t => {
  const cluster = await Cluster.start(2, { keepLogs: true })
  const rogue = await createSwarmNode({ listen: ['/ip4/127.0.0.1/tcp/0'], heartbeatMs: 50 })
  try {
    const target = cluster.peers[0]!
    await rogue.dial(peerIdFromString(target.peerId), { signal: AbortSignal.timeout(5000) }).catch(async () => {
      const { multiaddr } = await import('@multiformats/multiaddr')
      await rogue.dial(multiaddr(target.addrs()[0]!))
    })
    const pubsub = rogue.services.pubsub
    pubsub.subscribe(JOBS_TOPIC)
    await until(() => pubsub.getSubscribers(JOBS_TOPIC).length > 0, [pubsub], ['subscription-change', 'gossipsub:heartbeat'], 10_000, 'rogue in the mesh')
    await pubsub.publish(JOBS_TOPIC, Buffer.from('{not json'))
    await pubsub.publish(JOBS_TOPIC, Buffer.from(JSON.stringify({ type: 'announce', v: PROTOCOL_VERSION, jobId: 'x', jobKey: 'a'.repeat(64), kind: 'tiles', coordinator: target.peerId, addrs: [], tiles: 1, pending: 1, done: 0, leaseMs: 1 })))
    await pubsub.publish(PEERS_TOPIC, Buffer.from(JSON.stringify({ type: 'hello', v: 2 })))
    const { multiaddr } = await import('@multiformats/multiaddr')
    const stream = await rogue.dialProtocol(multiaddr(target.addrs()[0]!), TILE_PROTOCOL)
    await stream.sink([Buffer.from([5, 0x48, 0x7b, 0x7b, 0x7b, 0x7b]), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])])
    const logs = cluster.logs.get(target)!
    await until(() => logs.filter(l => /ignored a gossip message/.test(l)).length >= 2 && logs.some(l => /tile session with .* ended/.test(l)),
      [target.node.services.pubsub], ['gossipsub:heartbeat'], 10_000, 'the rogue messages to be logged')
    t.true(logs.some(l => /speaks for another peer/.test(l)), logs.join('\n'))
    const dir = await tempDir()
    const run = await swarmVersusLocal(target, fixture('low-contrast.jpg'), 'sobel', dir, 64)
    t.true(run.swarm.equals(run.local))
  } finally {
    await rogue.stop()
    await cluster.stop()
  }
})
