import test from 'ava'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster } from '../../sim/cluster.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import { createSwarmNode } from '../../src/net/node.ts'
import { readSwarmKey, writeSwarmKey } from '../../src/net/swarm-key.ts'
import { runCli } from '../helpers/cli.ts'
import { fixture } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/swarm.ts'

async function keyFile (dir: string, name: string): Promise<Uint8Array> {
  await writeSwarmKey(join(dir, name))
  return await readSwarmKey(join(dir, name))
}

test.serial('a private swarm: members work together; outsiders cannot connect and are told why', async t => {
  const dir = await tempDir()
  const key = await keyFile(dir, 'swarm.key')
  const other = await keyFile(dir, 'other.key')
  const cluster = await Cluster.start(2, { swarmKey: key })
  try {
    const addr = cluster.peers[0]!.addrs()[0]!
    const request = requestFromFlags({ ops: 'sobel', imagePath: fixture('low-contrast.jpg'), out: join(dir, 'out.png') })
    const done = await submitToSwarm(request, { peer: addr, swarmKey: key })
    t.is(Object.keys(done.tilesByPeer).length >= 1, true)
    await t.throwsAsync(submitToSwarm(request, { peer: addr, dialTimeoutMs: 3000 }), { name: 'NetworkError', message: /a private swarm's peer answers there, and the handshake failed: the swarm is private: pass its --swarm-key/ })
    await t.throwsAsync(submitToSwarm(request, { peer: addr, swarmKey: other, dialTimeoutMs: 3000 }), { name: 'NetworkError', message: /check that --swarm-key is the swarm's key/ })
    // A peer with the wrong key cannot join.
    const outsider = await createSwarmNode({ listen: ['/ip4/127.0.0.1/tcp/0'], swarmKey: other })
    try {
      await t.throwsAsync(outsider.dial(multiaddr(addr), { signal: AbortSignal.timeout(3000) }))
      t.is(cluster.peers[0]!.node.getConnections().filter(c => c.remotePeer.equals(outsider.peerId)).length, 0)
    } finally {
      await outsider.stop()
    }
  } finally {
    await cluster.stop()
  }
})

test.serial('--allow-submit: a listed client submits, another is refused with a clear error', async t => {
  const dir = await tempDir()
  const allowedKey = await generateKeyPair('Ed25519')
  const allowed = peerIdFromPrivateKey(allowedKey).toString()
  const cluster = await Cluster.start(2, { allowSubmit: new Set([allowed]) })
  try {
    const addr = cluster.peers[0]!.addrs()[0]!
    const request = requestFromFlags({ ops: 'invert', imagePath: fixture('low-contrast.jpg'), out: join(dir, 'out.png') })
    await submitToSwarm(request, { peer: addr, privateKey: allowedKey })
    await t.throwsAsync(submitToSwarm(request, { peer: addr }), { name: 'JobFailedError', message: /^peer 12D3KooW\w+ may not submit jobs to this peer \(--allow-submit\)/ })
    t.is(cluster.peers[0]!.submissions.activeJobs, 0)
  } finally {
    await cluster.stop()
  }
})

test('keygen writes a key once, id prints a kept peer id, bad keys are refused', async t => {
  const dir = await tempDir()
  const path = join(dir, 'swarm.key')
  const first = await runCli(['keygen', '--out', path])
  t.is(first.code, 0, first.stderr)
  t.regex((await readFile(path, 'utf8')), /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/)
  const again = await runCli(['keygen', '--out', path])
  t.is(again.code, 1)
  t.regex(again.stderr, /exists; it may be the key of a running swarm \(--force replaces it\)/)
  const id1 = await runCli(['id', '--data-dir', join(dir, 'c')])
  const id2 = await runCli(['id', '--data-dir', join(dir, 'c')])
  t.regex(id1.stdout, /^12D3KooW\w+\n$/)
  t.is(id1.stdout, id2.stdout)
  await writeFile(join(dir, 'bad.key'), 'not a key')
  await t.throwsAsync(readSwarmKey(join(dir, 'bad.key')), { name: 'SwarmKeyError', message: /is not a swarm key \(make one with: tileswarm keygen/ })
  const peer = await runCli(['--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(dir, 'p'), '--swarm-key', join(dir, 'bad.key')])
  t.is(peer.code, 1)
  t.regex(peer.stderr, /^tileswarm: .*bad\.key is not a swarm key/)
  const badAllow = await runCli(['--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(dir, 'p2'), '--allow-submit', 'nobody'])
  t.regex(badAllow.stderr, /Expected a peer id for --allow-submit but received 'nobody'/)
})
