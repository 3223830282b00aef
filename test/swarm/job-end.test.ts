import test from 'ava'
import { multiaddr } from '@multiformats/multiaddr'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster, until } from '../../sim/cluster.ts'
import { runLocal } from '../../src/client/local.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm, type SubmitEvent } from '../../src/client/submit.ts'
import type { JobCoordinator } from '../../src/job/coordinator.ts'
import { createClientNode } from '../../src/net/node.ts'
import { PROTOCOL_VERSION, SUBMIT_PROTOCOL } from '../../src/protocol/constants.ts'
import { FramedChannel } from '../../src/protocol/framing.ts'
import type { SwarmPeer } from '../../src/swarm/peer.ts'
import { fixture } from '../helpers/fixtures.ts'
import { noisePng, slowProcessor, tempDir } from '../helpers/swarm.ts'

/** Strikes the coordinator once half of its job's tiles are in; counts what the other peers, and all, had finished by then. */
function strikeAtHalf (coordinator: SwarmPeer, strike: () => void): { finishedByOthers: () => number, finished: () => number } {
  let finishedByOthers = 0
  let finished = 0
  let struck = false
  coordinator.events.addEventListener('job', evt => {
    const job = (evt as CustomEvent<JobCoordinator>).detail
    job.on('placed', (_tile, by) => {
      if (struck) return
      finished++
      if (by !== coordinator.peerId) finishedByOthers++
      if (job.leases.completed >= job.tiles.length / 2) {
        struck = true
        strike()
      }
    })
  })
  return { finishedByOthers: () => finishedByOthers, finished: () => finished }
}

for (const how of ['crashes', 'leaves (SIGTERM)'] as const) {
  test.serial(`a coordinator that ${how} mid-job: the client resumes on another peer, which collects the finished tiles; output exact`, async t => {
    const cluster = await Cluster.start(3, { process: slowProcessor(4), leaseMs: 2000 })
    try {
      const coordinator = cluster.peers[0]!
      const { finishedByOthers, finished } = strikeAtHalf(coordinator, () => { void (how === 'crashes' ? cluster.crash(coordinator) : cluster.leave(coordinator)) })
      const dir = await tempDir()
      const input = await noisePng(dir, 640, 480)
      const events: SubmitEvent[] = []
      const done = await submitToSwarm(requestFromFlags({ ops: 'blur:2,sobel', imagePath: input, out: join(dir, 'swarm.png') }), { peer: coordinator.addrs()[0]!, tileSize: 32, onEvent: e => { events.push(e) } })
      await runLocal(requestFromFlags({ ops: 'blur:2,sobel', imagePath: input, out: join(dir, 'local.png') }))
      t.true((await readFile(join(dir, 'swarm.png'))).equals(await readFile(join(dir, 'local.png'))), 'exact')
      const kinds = events.map(e => e.event)
      t.true(kinds.includes('lost') && kinds.includes('resumed'), kinds.join(' '))
      const recovered = events.find(e => e.event === 'recovered') as Extract<SubmitEvent, { event: 'recovered' }> | undefined
      t.truthy(recovered, kinds.join(' '))
      t.is(recovered!.total, 300)
      t.is(done.leases.recovered, recovered!.tiles)
      // Every tile the surviving peers had finished is collected, not computed again.
      t.true(recovered!.tiles >= finishedByOthers(), `recovered ${recovered!.tiles}, finished by others ${finishedByOthers()}`)
      if (how === 'leaves (SIGTERM)') {
        // Leaving, the coordinator handed over what its own worker had finished too: no tile is computed twice.
        t.true(recovered!.tiles >= finished(), `recovered ${recovered!.tiles}, finished ${finished()}`)
        t.is(done.leases.granted - (done.verify?.extra ?? 0) - done.leases.speculated, 300 - recovered!.tiles, JSON.stringify(done.leases))
      } else t.false(Object.keys(done.tilesByPeer).includes(coordinator.peerId))
      // The survivors worked for both coordinators: both jobs' holds on the input go, and with them the file and its pixels.
      const survivors = cluster.live
      await until(() => survivors.every(p => p.inputs.size === 0), survivors.map(p => p.inputs), ['released'], 10_000, 'the survivors to let the input go')
      t.log(`${how}: recovered ${recovered!.tiles} of 300 tiles (${finished()} finished before, ${finishedByOthers()} by the survivors); resumed job granted ${done.leases.granted}`)
    } finally {
      await cluster.stop()
    }
  })
}

test.serial('a lone coordinator that dies mid-job: the client says the job is lost, and what to do', async t => {
  const cluster = await Cluster.start(1, { process: slowProcessor(10) })
  try {
    const coordinator = cluster.peers[0]!
    strikeAtHalf(coordinator, () => { void cluster.crash(coordinator) })
    const dir = await tempDir()
    const request = requestFromFlags({ ops: 'sobel', imagePath: fixture('flowers.jpeg'), out: join(dir, 'o.png') })
    await t.throwsAsync(submitToSwarm(request, { peer: coordinator.addrs()[0]!, tileSize: 256 }), { name: 'NetworkError', message: /^lost the coordinator at .* \(.*\), and no other peer could take the job over: the job is lost; submit it again$/ })
  } finally {
    await cluster.stop()
  }
})

test.serial('a straggler holding tiles with a long lease: idle peers copy them, and the job does not wait for the lease', async t => {
  const cluster = await Cluster.start(3, { leaseMs: 60_000, process: slowProcessor(4) })
  try {
    const victim = cluster.peers[2]!
    let struck = false
    cluster.peers[0]!.events.addEventListener('job', evt => {
      (evt as CustomEvent<JobCoordinator>).detail.on('placed', (_tile, by) => {
        if (by === victim.peerId && !struck && victim.worker.heldLeases > 0) { struck = true; cluster.hang(victim) }
      })
    })
    const dir = await tempDir()
    const started = performance.now()
    const done = await submitToSwarm(requestFromFlags({ ops: 'median:3', imagePath: await noisePng(dir, 320, 320), out: join(dir, 'o.png') }), { peer: cluster.peers[0]!.addrs()[0]!, tileSize: 32 })
    const ms = performance.now() - started
    t.true(struck)
    t.true(done.leases.speculated >= 1, JSON.stringify(done.leases))
    t.is(done.leases.expired, 0)
    t.true(ms < 30_000, `done in ${ms.toFixed(0)} ms, well inside the 60 s lease`)
    t.log(`straggler: done in ${ms.toFixed(0)} ms; ${done.leases.speculated} copies of ${done.leases.granted - done.leases.speculated} tiles`)
  } finally {
    await cluster.stop()
  }
})

test.serial('a client that hangs up mid-job: its job is logged as cancelled, not refused or failed', async t => {
  const cluster = await Cluster.start(1, { keepLogs: true, process: slowProcessor(10) })
  const client = await createClientNode()
  try {
    const peer = cluster.peers[0]!
    const image = await readFile(fixture('flowers.jpeg'))
    const channel = new FramedChannel(await client.dialProtocol(multiaddr(peer.addrs()[0]!), SUBMIT_PROTOCOL), { maxBodyBytes: 1 << 20 })
    await channel.send({ type: 'submit', v: PROTOCOL_VERSION, ops: [{ op: 'sobel' }], format: 'png', quality: 90, bytes: image.length, tileSize: 64 })
    await channel.receive({ timeoutMs: 5000 })
    await channel.send({ type: 'upload' }, image)
    while ((await channel.receive({ timeoutMs: 10_000 })).header.type !== 'accepted');
    channel.abort(new Error('the user pressed ^C'))
    const logs = cluster.logs.get(peer)!
    await until(() => logs.some(l => /: cancelled: the client went away$/.test(l)), [peer.node.services.pubsub], ['gossipsub:heartbeat'], 10_000, 'the cancellation to be logged')
    t.false(logs.some(l => /refused|failed/.test(l)), logs.join('\n'))
  } finally {
    await client.stop()
    await cluster.stop()
  }
})
