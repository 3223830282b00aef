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
import { heldAfter, tempDir } from '../helpers/swarm.ts'

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

test.serial('a peer no other has joined says so after a while, and a job submitted to it is told it runs on that peer alone', async t => {
  const cluster = new Cluster({ keepLogs: true })
  try {
    const lone = await cluster.addPeer({ aloneWarnMs: 300, slots: 2 })
    const logs = cluster.logs.get(lone)!
    await untilSeen(lone, () => logs.some(l => /^alone for \d+ s: no peer has joined; jobs submitted here run on this peer only \(start other peers with --bootstrap/.test(l)), 'the alone warning')
    t.is(logs.filter(l => /^alone for/.test(l)).length, 1, 'said once')
    const dir = await tempDir()
    const notes: string[] = []
    await submitToSwarm(requestFromFlags({ ops: 'invert', imagePath: fixture('low-contrast.jpg'), out: join(dir, 'o.png') }), { peer: lone.addrs()[0]!, onEvent: e => { if (e.event === 'accepted') notes.push(...e.notes) } })
    t.true(notes.some(n => /connected to no other: it computes every tile itself/.test(n)), notes.join('; '))
  } finally {
    await cluster.stop()
  }
})

test.serial('the status a peer gives: its peers with what their hellos said, the jobs it coordinates and those others announce', async t => {
  // Tiles wait (after a few) until both views have been taken, so the job is surely running then.
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const held = heldAfter(6, released)
  const cluster = await Cluster.start(3, { keepLogs: true, process: held })
  try {
    const [a, b, c] = cluster.peers as [SwarmPeer, SwarmPeer, SwarmPeer]
    await untilSeen(a, () => a.status().peers.filter(p => p.slots !== undefined).length === 2, 'hellos from both other peers')
    const status = a.status()
    t.is(status.peerId, a.peerId)
    t.is(status.peers.length, 2)
    t.true(status.peers.every(p => p.connected && p.slots === 1 && p.upS !== undefined && p.lastSeenS === 0 && p.addrs.length > 0))
    // A job on b: b has it here with its leases; a hears of it from its announcements.
    const dir = await tempDir()
    const job = submitToSwarm(requestFromFlags({ ops: 'blur:sigma=3', imagePath: fixture('Landscape_5.jpg'), out: join(dir, 'o.png') }), { peer: b.addrs()[0]!, tileSize: 64, verify: 'off' })
    await untilSeen(b, () => b.status().jobs.some(j => j.here && j.kind === 'tiles' && j.total === 80 && j.done > 0), 'b to list the job as its own')
    t.like(b.status().jobs[0], { here: true, coordinator: b.peerId, phase: 'tiles', leases: { expired: 0 } })
    await untilSeen(a, () => a.status().jobs.some(j => !j.here && j.coordinator === b.peerId && j.kind === 'tiles'), 'a to list it as b\'s')
    release()
    await job
    await untilSeen(a, () => a.status().jobs.length === 0, 'the job gone from a\'s view once finished')
    // What each peer's hellos say it did adds up to the job's tiles (a's own, as a knows it); with checks off, none is computed twice.
    const said = (): number => a.worker.computed + [b, c].reduce((n, p) => n + (a.status().peers.find(q => q.peerId === p.peerId)?.done ?? 0), 0)
    await untilSeen(a, () => said() === 80, 'the hellos to count every tile')
  } finally {
    release()
    await cluster.stop()
  }
})

test.serial('--announce: a peer tells others the address it is given, not the one it listens on; processes here still reach it', async t => {
  const cluster = await Cluster.start(1)
  try {
    // A port free now: listening needs a fixed one to be announced.
    const probe = createServer()
    await new Promise<void>(resolve => { probe.listen(0, '127.0.0.1', resolve) })
    const port = (probe.address() as { port: number }).port
    await new Promise(resolve => { probe.close(resolve) })
    const natted = await cluster.addPeer({ listen: [`/ip4/127.0.0.1/tcp/${port}`], announce: [`/ip4/198.18.0.77/tcp/${port}`] })
    t.true(natted.addrs().every(a => a.startsWith(`/ip4/198.18.0.77/tcp/${port}/p2p/`)), natted.addrs().join(' '))
    t.is(natted.localAddrs()[0], `/ip4/127.0.0.1/tcp/${port}/p2p/${natted.peerId}`)
    const first = cluster.peers[0]!
    await untilSeen(first, () => first.status().peers.some(p => p.peerId === natted.peerId && p.addrs.length > 0), 'the natted peer\'s hello')
    t.true(first.status().peers.find(p => p.peerId === natted.peerId)!.addrs.every(a => a.includes('198.18.0.77')))
  } finally {
    await cluster.stop()
  }
})

test.serial('jobs elsewhere in full: a peer asks their coordinators for tiles by peer, leases and phase (the dashboard\'s and `status`\'s view)', async t => {
  // Tiles wait until the view has been taken, so the job is surely running then.
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const held = heldAfter(6, released)
  const cluster = await Cluster.start(3, { process: held })
  try {
    const [a, b] = cluster.peers as [SwarmPeer, SwarmPeer]
    const dir = await tempDir()
    const job = submitToSwarm(requestFromFlags({ ops: 'invert', imagePath: fixture('Landscape_5.jpg'), out: join(dir, 'o.png') }), { peer: b.addrs()[0]!, tileSize: 64, verify: 'off' })
    await untilSeen(a, () => a.status().jobs.some(j => !j.here && j.coordinator === b.peerId && j.done > 0), 'b\'s job announced with progress')
    const basic = a.status().jobs.find(j => j.coordinator === b.peerId)!
    t.is(basic.byPeer, undefined, 'an announcement does not say who did what')
    const full = (await a.detailedStatus()).jobs.find(j => j.jobId === basic.jobId)!
    t.false(full.here)
    t.is(full.coordinator, b.peerId)
    t.true(Object.values(full.byPeer ?? {}).reduce((n, k) => n + k, 0) > 0, JSON.stringify(full))
    t.like(full.leases, { expired: 0 })
    t.is(full.phase, 'tiles')
    release()
    await job
  } finally {
    release()
    await cluster.stop()
  }
})
