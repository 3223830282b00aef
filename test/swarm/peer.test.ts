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

test.serial('a peer sizes its libuv pool to --slots, in either spelling, unless told otherwise', async t => {
  const dir = await tempDir()
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'UV_THREADPOOL_SIZE'))
  const cases: Array<[string[], NodeJS.ProcessEnv, number]> = [
    [['--slots', '3'], env, 3],
    [['--slots=1'], env, 1],
    [['--slots', '2'], { ...env, UV_THREADPOOL_SIZE: '7' }, 7],
    [[], { ...env, TILESWARM_SLOTS: '3' }, 3],
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
