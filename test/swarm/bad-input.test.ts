import test from 'ava'
import { createServer } from 'node:net'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster } from '../../sim/cluster.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import { createClientNode } from '../../src/net/node.ts'
import { SUBMIT_PROTOCOL } from '../../src/protocol/constants.ts'
import { FramedChannel } from '../../src/protocol/framing.ts'
import { fixture } from '../helpers/fixtures.ts'
import { swarmVersusLocal, tempDir } from '../helpers/swarm.ts'

/** Speaks the submit protocol directly, skipping the client's own checks. */
async function rawSubmit (addr: string, header: Record<string, unknown>, body?: Uint8Array): Promise<Record<string, unknown>> {
  const node = await createClientNode()
  try {
    const { multiaddr } = await import('@multiformats/multiaddr')
    const stream = await node.dialProtocol(multiaddr(addr), SUBMIT_PROTOCOL, { signal: AbortSignal.timeout(5000) })
    const channel = new FramedChannel(stream, { maxBodyBytes: 1 << 30 })
    await channel.send(header, body)
    for (;;) {
      const { header: reply } = await channel.receive({ timeoutMs: 10_000 })
      if (reply.type === 'error' || reply.type === 'result') return reply
    }
  } finally {
    await node.stop()
  }
}

test.serial('bad submissions get a clear error at the client; the coordinator serves the next job', async t => {
  const cluster = await Cluster.start(2, { maxPixels: 50_000_000 })
  const peer = cluster.peers[0]!
  const addr = peer.addrs()[0]!
  try {
    const dir = await tempDir()
    const submit = async (name: string, ops = 'sobel') => await submitToSwarm(requestFromFlags({ ops, imagePath: fixture(name), out: join(dir, 'x.png') }), { peer: addr })
    await t.throwsAsync(submit('truncated.jpg'), { name: 'JobFailedError', message: /^image is truncated/ })
    await t.throwsAsync(submit('corrupt-header.jpg'), { name: 'JobFailedError', message: /^image header is corrupt/ })
    await t.throwsAsync(submit('65536-uint32-limit.png'), { name: 'JobFailedError', message: /65536x65536 = 4295.0 MP, over the limit of 50.0 MP/ })
    const good = { type: 'submit', v: 1, ops: [{ op: 'sobel' }], format: 'png', quality: 90 }
    const png = await readFile(fixture('low-contrast.jpg'))
    t.like(await rawSubmit(addr, { ...good, ops: [{ op: 'canny' }] }, png), { type: 'error', name: 'UnknownOperationError' })
    t.like(await rawSubmit(addr, { ...good, ops: [{ op: 'blur', params: { sigma: -1 } }] }, png), { type: 'error', name: 'InvalidParameterError' })
    t.like(await rawSubmit(addr, { ...good, v: 99 }, png), { type: 'error', name: 'ProtocolError' })
    t.like(await rawSubmit(addr, { ...good, surprise: true }, png), { type: 'error', name: 'ProtocolError' })
    t.like(await rawSubmit(addr, { ...good, tileSize: 3 }, png), { type: 'error', name: 'LimitExceededError' })
    t.like(await rawSubmit(addr, good), { type: 'error', name: 'ProtocolError' })
    t.like(await rawSubmit(addr, good, Buffer.alloc(0)), { type: 'error', name: 'InvalidImageError', message: 'image is empty (0 bytes)' })
    t.like(await rawSubmit(addr, { ...good, bodyBytes: 2 ** 39 }), { type: 'error', name: 'LimitExceededError' })
    // ...and the same coordinator still does real work.
    const run = await swarmVersusLocal(peer, fixture('low-contrast.jpg'), 'edge_detection', dir, 64)
    t.true(run.swarm.equals(run.local))
    t.is(peer.jobs.size, 0)
  } finally {
    await cluster.stop()
  }
})

test('an unreachable peer: a clear error within the bound', async t => {
  const dir = await tempDir()
  const request = requestFromFlags({ ops: 'sobel', imagePath: fixture('low-contrast.jpg'), out: join(dir, 'x.png') })
  // Nothing listens: refused at once.
  const closed = createServer()
  await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
  const closedPort = (closed.address() as { port: number }).port
  await new Promise(resolve => closed.close(resolve))
  await t.throwsAsync(submitToSwarm(request, { peer: `/ip4/127.0.0.1/tcp/${closedPort}`, dialTimeoutMs: 2000 }), { name: 'NetworkError', message: /^cannot reach \/ip4\/127.0.0.1\/tcp\/\d+: / })
  // Something accepts but never speaks (a wrong swarm key looks like this): the dial timeout ends it.
  const silent = createServer(() => {})
  await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
  const port = (silent.address() as { port: number }).port
  const started = performance.now()
  await t.throwsAsync(submitToSwarm(request, { peer: `/ip4/127.0.0.1/tcp/${port}`, dialTimeoutMs: 1000 }), { name: 'NetworkError', message: /no answer within 1 s/ })
  t.true(performance.now() - started < 5000)
  silent.close()
  await t.throwsAsync(submitToSwarm(request, { peer: 'not-an-address' }), { name: 'InvalidParameterError', message: /Expected a multiaddr for --peer/ })
})
