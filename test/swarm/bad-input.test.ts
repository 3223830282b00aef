import test from 'ava'
import { generateKey } from '@libp2p/pnet'
import { createServer as createHttpServer } from 'node:http'
import { createServer } from 'node:net'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster } from '../../sim/cluster.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import { createClientNode } from '../../src/net/node.ts'
import { PROTOCOL_VERSION, SUBMIT_PROTOCOL } from '../../src/protocol/constants.ts'
import { FramedChannel } from '../../src/protocol/framing.ts'
import { fixture } from '../helpers/fixtures.ts'
import { swarmVersusLocal, tempDir } from '../helpers/swarm.ts'

/**
 * Speaks the submit protocol directly, skipping the client's own checks: the
 * submission, then (if the peer is ready for it) the upload.
 */
async function rawSubmit (addr: string, header: Record<string, unknown>, body?: Uint8Array): Promise<Record<string, unknown>> {
  const node = await createClientNode()
  try {
    const { multiaddr } = await import('@multiformats/multiaddr')
    const stream = await node.dialProtocol(multiaddr(addr), SUBMIT_PROTOCOL, { signal: AbortSignal.timeout(5000) })
    const channel = new FramedChannel(stream, { maxBodyBytes: 1 << 30 })
    await channel.send(header)
    const admission = (await channel.receive({ timeoutMs: 10_000 })).header
    if (admission.type !== 'ready') return admission
    await channel.send({ type: 'upload' }, body)
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
    const png = await readFile(fixture('low-contrast.jpg'))
    const good = { type: 'submit', v: PROTOCOL_VERSION, ops: [{ op: 'sobel' }], format: 'png', quality: 90, bytes: png.length }
    t.like(await rawSubmit(addr, { ...good, ops: [{ op: 'hough' }] }, png), { type: 'error', name: 'UnknownOperationError' })
    t.like(await rawSubmit(addr, { ...good, ops: [{ op: 'crop', params: { left: 5000 } }] }, png), { type: 'error', name: 'InvalidParameterError', message: 'crop must lie inside the image of 300x245, got left=5000, top=0, width=0, height=0' })
    t.like(await rawSubmit(addr, { ...good, ops: [{ op: 'blur', params: { sigma: -1 } }] }, png), { type: 'error', name: 'InvalidParameterError' })
    t.like(await rawSubmit(addr, { ...good, v: 99 }, png), { type: 'error', name: 'ProtocolError' })
    t.like(await rawSubmit(addr, { ...good, surprise: true }, png), { type: 'error', name: 'ProtocolError' })
    t.like(await rawSubmit(addr, { ...good, tileSize: 3 }, png), { type: 'error', name: 'LimitExceededError' })
    t.like(await rawSubmit(addr, good), { type: 'error', name: 'ProtocolError', message: 'malformed message from the client: bodyBytes: Required' })
    t.like(await rawSubmit(addr, good, png.subarray(0, 0)), { type: 'error', name: 'ProtocolError' })
    t.like(await rawSubmit(addr, good, png.subarray(1)), { type: 'error', name: 'ProtocolError', message: `the upload is ${png.length - 1} bytes, the submission said ${png.length}` })
    t.like(await rawSubmit(addr, { ...good, bytes: undefined }, png), { type: 'error', name: 'ProtocolError' })
    t.like(await rawSubmit(addr, { ...good, bytes: 0 }, Buffer.alloc(0)), { type: 'error', name: 'InvalidImageError', message: 'image is empty (0 bytes)' })
    t.like(await rawSubmit(addr, { ...good, bytes: 2 ** 39 }), { type: 'error', name: 'LimitExceededError', message: "an image of 549755813888 bytes is over this peer's upload limit of 536870912 bytes (--max-upload-bytes)" })
    // ...and the same coordinator still does real work.
    const run = await swarmVersusLocal(peer, fixture('low-contrast.jpg'), 'edge_detection', dir, 64)
    t.true(run.swarm.equals(run.local))
    t.is(peer.submissions.activeJobs, 0)
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
  // Some other server: said so, with what it said, and no advice about keys.
  const web = createHttpServer((_req, res) => { res.end('hello') })
  await new Promise<void>(resolve => web.listen(0, '127.0.0.1', resolve))
  const webPort = (web.address() as { port: number }).port
  const error = await t.throwsAsync(submitToSwarm(request, { peer: `/ip4/127.0.0.1/tcp/${webPort}`, dialTimeoutMs: 2000 }), { name: 'NetworkError', message: /something other than a tileswarm peer answers there \(it said 'HTTP\/1\.1 400 Bad Request'\)/ })
  t.notRegex(error?.message ?? '', /swarm-key/)
  web.close()
})

function aSwarmKey (): Uint8Array {
  const key = new Uint8Array(95)
  generateKey(key)
  return key
}

test('a peer of an open swarm, asked with a swarm key: told to drop the key', async t => {
  const cluster = await Cluster.start(1)
  try {
    const dir = await tempDir()
    const request = requestFromFlags({ ops: 'sobel', imagePath: fixture('low-contrast.jpg'), out: join(dir, 'x.png') })
    await t.throwsAsync(submitToSwarm(request, { peer: cluster.peers[0]!.addrs()[0]!, swarmKey: aSwarmKey(), dialTimeoutMs: 2000 }), { name: 'NetworkError', message: /the peer there runs an open swarm: drop --swarm-key/ })
  } finally {
    await cluster.stop()
  }
})
