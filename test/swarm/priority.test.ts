import test from 'ava'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { submitToSwarm } from '../../src/client/submit.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import type { JobEnded } from '../../src/swarm/submit-service.ts'
import type { SwarmPeer } from '../../src/swarm/peer.ts'
import type { Priority } from '../../src/protocol/constants.ts'
import type { PrivateKey } from '@libp2p/interface'
import { noisePng, withCluster } from '../helpers/swarm.ts'

const serial = test.serial

async function client (): Promise<{ key: PrivateKey, id: string }> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key).toString() }
}

/** A small job sent to `peer` with `priority` from the client `key`; the job as its coordinator saw it when it ended. */
async function send (peer: SwarmPeer, dir: string, priority: Priority, key?: PrivateKey): Promise<JobEnded['job']> {
  const ended = new Promise<JobEnded['job']>(resolve => {
    peer.events.addEventListener('ended', evt => { resolve((evt as CustomEvent<JobEnded>).detail.job) }, { once: true })
  })
  await submitToSwarm(requestFromFlags({ ops: 'invert', imagePath: await noisePng(dir, 40, 30), out: join(dir, `out-${priority}.png`) }), { peer: peer.addrs()[0]!, priority, ...(key !== undefined ? { privateKey: key } : {}) })
  return await ended
}

serial('by default nobody may use high: refused with one line naming the flag; normal and low go, as the job\'s submitter', async t => {
  await withCluster(1, async (cluster, dir) => {
    const peer = cluster.peers[0]!
    const me = await client()
    const err = await t.throwsAsync(send(peer, dir, 'high', me.key))
    t.regex(err!.message, /may not submit high-priority jobs to this peer \(not on its --allow-priority, nor, without it, on --allow-submit\); submit with --priority normal/)
    t.false(err!.message.includes('\n'))
    const low = await send(peer, dir, 'low', me.key)
    t.like(low, { priority: 'low', submitter: me.id, client: me.id })
    t.like(await send(peer, dir, 'normal', me.key), { priority: 'normal', submitter: me.id })
  })
})

serial('--allow-submit\'s peers may use high where --allow-priority is not given; --allow-priority names them otherwise; all lets everyone', async t => {
  const listed = await client()
  const other = await client()
  await withCluster(1, { allowSubmit: new Set([listed.id, other.id]), allowPriority: new Set([listed.id]) }, async (cluster, dir) => {
    const peer = cluster.peers[0]!
    t.like(await send(peer, dir, 'high', listed.key), { priority: 'high', submitter: listed.id })
    const err = await t.throwsAsync(send(peer, dir, 'high', other.key))
    t.regex(err!.message, /may not submit high-priority jobs to this peer \(not on its --allow-priority\)/)
  })
  await withCluster(1, { allowSubmit: new Set([listed.id]) }, async (cluster, dir) => {
    t.like(await send(cluster.peers[0]!, dir, 'high', listed.key), { priority: 'high' })
  })
  await withCluster(1, { allowPriority: 'all' }, async (cluster, dir) => {
    t.like(await send(cluster.peers[0]!, dir, 'high'), { priority: 'high' })
  })
})

serial('announcements carry the submitter and the priority to other peers\' workers', async t => {
  const me = await client()
  await withCluster(2, { allowPriority: 'all', spread: 'always' }, async (cluster, dir) => {
    const heard: Array<{ submitter?: string, priority?: string }> = []
    const worker = cluster.peers[1]!.worker
    const addJob = worker.addJob.bind(worker)
    worker.addJob = ref => { heard.push({ ...(ref.submitter !== undefined ? { submitter: ref.submitter } : {}), ...(ref.priority !== undefined ? { priority: ref.priority } : {}) }); addJob(ref) }
    await send(cluster.peers[0]!, dir, 'high', me.key)
    t.true(heard.length > 0, 'the other peer heard the job')
    t.deepEqual(heard[0], { submitter: me.id, priority: 'high' })
  })
})

test('a priority that is not one is refused before anything is sent', async t => {
  const err = await t.throwsAsync(submitToSwarm(requestFromFlags({ ops: 'invert', imagePath: 'nowhere.png', out: 'nowhere-out.png' }), { peer: '/ip4/127.0.0.1/tcp/1', priority: 'urgent' as Priority }))
  t.regex(err!.message, /^Expected high, normal, low for priority but received 'urgent'$/)
})
