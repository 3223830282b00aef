import test from 'ava'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { Cluster, until } from '../../sim/cluster.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import type { SwarmPeer } from '../../src/swarm/peer.ts'
import { fixture } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/swarm.ts'

/** Re-checks on every gossip heartbeat of `peer` (50 ms in a cluster), bounded. */
async function untilSeen (peer: SwarmPeer, check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  await until(check, [peer.node.services.pubsub], ['gossipsub:heartbeat'], timeoutMs, what)
}

test.serial('a bootstrap peer that restarts is dialed again: its peer says when it is alone and when it is back, and jobs spread again', async t => {
  const cluster = new Cluster({ keepLogs: true })
  try {
    const key = await generateKeyPair('Ed25519')
    const first = await cluster.addPeer({ privateKey: key })
    const second = await cluster.addPeer()
    await cluster.waitForMesh()
    const port = first.addrs()[0]!.split('/')[4]!
    const logs = cluster.logs.get(second)!
    await cluster.leave(first)
    await untilSeen(second, () => logs.some(l => /^alone: connected to no peer/.test(l)) && logs.some(l => /cannot reach bootstrap .*trying again in/.test(l)), 'the peer to say it is alone')
    const again = await cluster.addPeer({ privateKey: key, listen: [`/ip4/127.0.0.1/tcp/${port}`], bootstrap: [] })
    t.is(again.peerId, first.peerId)
    await until(() => again.node.getConnections(peerIdFromString(second.peerId)).length > 0, [again.node], ['peer:connect'], 15_000, 'the peer to dial the restarted bootstrap')
    await untilSeen(second, () => logs.some(l => /^back in the swarm/.test(l)) && logs.some(l => /reached bootstrap .* again/.test(l)), 'the peer to say it is back')
    await cluster.waitForMesh()
    const dir = await tempDir()
    const done = await submitToSwarm(requestFromFlags({ ops: 'median:3', imagePath: fixture('flowers.jpeg'), out: join(dir, 'o.png') }), { peer: again.addrs()[0]!, tileSize: 64 })
    t.deepEqual(Object.keys(done.tilesByPeer).sort(), [again.peerId, second.peerId].sort(), 'both peers worked on the job')
  } finally {
    await cluster.stop()
  }
})

test.serial('an unreachable bootstrap is reported and retried; one without /p2p/ is used, with a warning', async t => {
  const cluster = await Cluster.start(1, { keepLogs: true })
  const closed = createServer()
  await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
  const deadPort = (closed.address() as { port: number }).port
  await new Promise(resolve => closed.close(resolve))
  try {
    const target = cluster.peers[0]!
    const bare = target.addrs()[0]!.split('/p2p/')[0]!
    const joiner = await cluster.addPeer({ bootstrap: [`/ip4/127.0.0.1/tcp/${deadPort}`, bare] })
    const logs = cluster.logs.get(joiner)!
    await until(() => joiner.node.getConnections(peerIdFromString(target.peerId)).length > 0, [joiner.node], ['peer:connect'], 10_000, 'the joiner to reach the bootstrap without an id')
    t.true(logs.some(l => l.startsWith(`bootstrap ${bare} has no /p2p/ peer id`)), logs.join('\n'))
    await untilSeen(joiner, () => logs.filter(l => l.startsWith(`cannot reach bootstrap /ip4/127.0.0.1/tcp/${deadPort}:`)).length >= 2, 'two failed dials reported')
    t.regex(logs.find(l => l.startsWith('cannot reach bootstrap'))!, /ECONNREFUSED|refused/i)
  } finally {
    await cluster.stop()
  }
})

test.serial('a multiaddr whose /p2p/ id is another peer\'s: the dial fails naming both, and the peer there gets nothing', async t => {
  const cluster = await Cluster.start(2, { keepLogs: true })
  try {
    const [a, b] = cluster.peers as [SwarmPeer, SwarmPeer]
    const wrong = `${a.addrs()[0]!.split('/p2p/')[0]!}/p2p/${b.peerId}`
    const dir = await tempDir()
    const request = requestFromFlags({ ops: 'sobel', imagePath: fixture('low-contrast.jpg'), out: join(dir, 'o.png') })
    const err = await t.throwsAsync(submitToSwarm(request, { peer: wrong }), { name: 'NetworkError', message: `cannot reach ${wrong}: a different peer answered there (${a.peerId}); sent it nothing` })
    t.truthy(err)
    t.false(cluster.logs.get(a)!.some(l => /submission from|coordinating/.test(l)), 'a got no job')
  } finally {
    await cluster.stop()
  }
})
