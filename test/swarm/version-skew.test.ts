import test from 'ava'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { Cluster, until } from '../../sim/cluster.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import { agentVersion, speaksOf } from '../../src/net/agent.ts'
import { PROTOCOL_VERSION } from '../../src/protocol/constants.ts'
import { formatStatus } from '../../src/swarm/status.ts'
import { VersionSkew } from '../../src/swarm/version-skew.ts'
import { fixture } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/swarm.ts'

const OLD = { protocol: 5, version: '0.0.9' }

test('what a peer speaks, from its agentVersion, or from its protocol ids when it says nothing (older builds)', t => {
  t.deepEqual(speaksOf({ agentVersion: agentVersion(), protocols: [] }), { protocol: PROTOCOL_VERSION, version: '0.1.0' })
  t.deepEqual(speaksOf({ agentVersion: 'js-libp2p/2.10.0 UserAgent=node/24', protocols: ['/ipfs/id/1.0.0', '/tileswarm/tile/5.0.0', '/tileswarm/submit/5.0.0'] }), { protocol: 5 })
  t.is(speaksOf({ agentVersion: 'js-libp2p/2.10.0', protocols: ['/ipfs/id/1.0.0'] }), undefined)
})

test.serial('a peer of another version is logged once on both sides, listed in the status, and a client it refuses is told its version', async t => {
  const lines: string[] = []
  const logged = new EventTarget()
  const cluster = await Cluster.start(1, { logFor: () => line => { lines.push(line); logged.dispatchEvent(new Event('log')) } })
  // A peer of an older build, as it shows itself on the wire: its agentVersion and its protocol ids say 5.
  const old = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    nodeInfo: { userAgent: agentVersion(OLD) },
    services: { identify: identify() },
  })
  for (const p of ['submit', 'tile', 'status']) await old.handle(`/tileswarm/${p}/${OLD.protocol}.0.0`, ({ stream }) => { stream.abort(new Error('old')) })
  const oldLines: string[] = []
  const oldSkew = new VersionSkew({ node: old, log: line => { oldLines.push(line); logged.dispatchEvent(new Event('log')) } }, { own: OLD })
  await oldSkew.start()
  try {
    const current = cluster.peers[0]!
    const started = performance.now()
    await old.dial(multiaddr(current.addrs()[0]!))
    const oldId = old.peerId.toString()
    await until(() => lines.some(l => l.includes(`peer ${oldId} speaks tileswarm protocol 5 (0.0.9); this peer speaks ${PROTOCOL_VERSION} (0.1.0): they cannot share jobs; upgrade ${oldId}`)), [logged], ['log'], 10_000, 'the current peer to log the old one')
    await until(() => oldLines.some(l => l.includes(`peer ${current.peerId} speaks tileswarm protocol ${PROTOCOL_VERSION} (0.1.0); this peer speaks 5 (0.0.9): they cannot share jobs; upgrade this peer`)), [logged], ['log'], 10_000, 'the old peer to log the current one')
    t.log(`both sides said so within ${Math.round(performance.now() - started)} ms`)
    // Once each, however often they meet.
    let identified = 0
    current.node.addEventListener('peer:identify', e => { if (e.detail.peerId.equals(old.peerId)) identified++ })
    await old.hangUp(current.node.peerId)
    await old.dial(multiaddr(current.addrs()[0]!))
    await until(() => identified > 0, [current.node], ['peer:identify'], 10_000, 'the old peer identified again')
    t.is(lines.filter(l => l.includes('speaks tileswarm protocol 5')).length, 1)
    const status = current.status()
    t.deepEqual(status.otherVersions, [{ peerId: oldId, protocol: 5, version: '0.0.9' }])
    t.is(status.protocol, PROTOCOL_VERSION)
    t.regex(formatStatus(status), /other versions: 1 peer met speak another protocol/)
    // A client of this build, sent to the old peer, is told why it cannot submit there.
    const dir = await tempDir()
    const error = await t.throwsAsync(submitToSwarm(requestFromFlags({ ops: 'invert', imagePath: fixture('low-contrast.jpg'), out: `${dir}/out.png` }), { peer: old.getMultiaddrs()[0]!.toString() }))
    t.regex(error.message, new RegExp(`this peer runs tileswarm protocol 5 \\(0\\.0\\.9\\); this client speaks ${PROTOCOL_VERSION} \\(0\\.1\\.0\\): its operator must upgrade it`))
  } finally {
    await oldSkew.stop()
    await old.stop()
    await cluster.stop()
  }
})
