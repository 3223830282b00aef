import test from 'ava'
import { multiaddr } from '@multiformats/multiaddr'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster, until } from '../../sim/cluster.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import type { JobCoordinator } from '../../src/job/coordinator.ts'
import { createClientNode } from '../../src/net/node.ts'
import { PROTOCOL_VERSION, SUBMIT_PROTOCOL } from '../../src/protocol/constants.ts'
import { FramedChannel } from '../../src/protocol/framing.ts'
import { fixture } from '../helpers/fixtures.ts'
import { slowProcessor, tempDir } from '../helpers/swarm.ts'

test.serial('a coordinator that dies mid-job: the client says the job is lost, and what to do', async t => {
  const cluster = await Cluster.start(2, { process: slowProcessor(10) })
  try {
    const coordinator = cluster.peers[0]!
    coordinator.events.addEventListener('job', evt => {
      (evt as CustomEvent<JobCoordinator>).detail.on('placed', () => { if (cluster.fate.get(coordinator) === 'alive') void cluster.crash(coordinator) })
    })
    const dir = await tempDir()
    const request = requestFromFlags({ ops: 'sobel', imagePath: fixture('flowers.jpeg'), out: join(dir, 'o.png') })
    await t.throwsAsync(submitToSwarm(request, { peer: coordinator.addrs()[0]! }), { name: 'NetworkError', message: /^lost the coordinator at .* before the result \(.*\): the job is lost; submit it again$/ })
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
