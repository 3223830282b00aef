import test from 'ava'
import { multiaddr } from '@multiformats/multiaddr'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster, until } from '../../sim/cluster.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm, type SubmitEvent } from '../../src/client/submit.ts'
import { createClientNode } from '../../src/net/node.ts'
import { PROTOCOL_VERSION, SUBMIT_PROTOCOL } from '../../src/protocol/constants.ts'
import { FramedChannel } from '../../src/protocol/framing.ts'
import { fixture } from '../helpers/fixtures.ts'
import { slowProcessor, tempDir } from '../helpers/swarm.ts'

const heartbeat = (cluster: Cluster): [EventTarget[], string[]] => [[cluster.peers[0]!.node.services.pubsub], ['gossipsub:heartbeat']]

test.serial('a full peer refuses before the upload is read: submissions still uploading hold their place', async t => {
  const cluster = await Cluster.start(1, { maxJobs: 1, keepLogs: true })
  const holder = await createClientNode()
  try {
    const peer = cluster.peers[0]!
    const addr = peer.addrs()[0]!
    // One client is admitted and holds its place: it has said what it will send, and sends nothing.
    const image = await readFile(fixture('low-contrast.jpg'))
    const held = new FramedChannel(await holder.dialProtocol(multiaddr(addr), SUBMIT_PROTOCOL), { maxBodyBytes: 1 << 20 })
    await held.send({ type: 'submit', v: PROTOCOL_VERSION, ops: [{ op: 'invert' }], format: 'png', quality: 90, bytes: image.length })
    t.is((await held.receive({ timeoutMs: 5000 })).header.type, 'ready')
    t.is(peer.submissions.activeJobs, 1)
    // Another is refused at once, and never sends its image.
    const dir = await tempDir()
    const request = requestFromFlags({ ops: 'sobel', imagePath: fixture('flowers.jpeg'), out: join(dir, 'out.png') })
    const events: SubmitEvent[] = []
    await t.throwsAsync(submitToSwarm(request, { peer: addr, busyRounds: 0, onEvent: e => { events.push(e) } }), { name: 'PeerBusyError', message: /limit \(--max-jobs\)/ })
    t.deepEqual(events.map(e => e.event), ['connected', 'passed'])
    // The place is freed when the holder goes: the next submission runs.
    held.abort(new Error('gone'))
    await until(() => peer.submissions.activeJobs === 0, ...heartbeat(cluster), 10_000, 'the place to be freed')
    const done = await submitToSwarm(request, { peer: addr })
    t.is(done.width, 1920)
  } finally {
    await holder.stop()
    await cluster.stop()
  }
})

test.serial('a full peer passes the job on: the client tries its next entry point, then peers it was told of', async t => {
  const cluster = await Cluster.start(2, { maxJobs: 1 })
  const holder = await createClientNode()
  try {
    const [full, free] = cluster.peers as [typeof cluster.peers[0], typeof cluster.peers[0]]
    const held = new FramedChannel(await holder.dialProtocol(multiaddr(full.addrs()[0]!), SUBMIT_PROTOCOL), { maxBodyBytes: 1 << 20 })
    await held.send({ type: 'submit', v: PROTOCOL_VERSION, ops: [{ op: 'invert' }], format: 'png', quality: 90, bytes: 10 })
    t.is((await held.receive({ timeoutMs: 5000 })).header.type, 'ready')
    const dir = await tempDir()
    const events: SubmitEvent[] = []
    const request = requestFromFlags({ ops: 'sobel', imagePath: fixture('low-contrast.jpg'), out: join(dir, 'out.png') })
    const done = await submitToSwarm(request, { peer: [full.addrs()[0]!, free.addrs()[0]!], onEvent: e => { events.push(e) } })
    t.is(done.width, 300)
    t.like(events.find(e => e.event === 'passed'), { event: 'passed', peer: full.addrs()[0]!, reason: 'this peer has 1 job under way, its limit (--max-jobs); try again later or submit to another peer' })
    held.abort(new Error('done'))
  } finally {
    await holder.stop()
    await cluster.stop()
  }
})

test.serial('ten clients at once on a peer with --max-jobs 1: one runs, the others are refused before uploading', async t => {
  const cluster = await Cluster.start(1, { maxJobs: 1, process: slowProcessor(20) })
  try {
    const addr = cluster.peers[0]!.addrs()[0]!
    const dir = await tempDir()
    const started = performance.now()
    const runs = await Promise.allSettled(Array.from({ length: 10 }, async (_, i) => {
      const events: string[] = []
      try {
        await submitToSwarm(requestFromFlags({ ops: 'median:5', imagePath: fixture('flowers.jpeg'), out: join(dir, `out-${i}.png`) }), { peer: addr, tileSize: 256, busyRounds: 0, onEvent: e => { events.push(e.event) } })
        return { ok: true, events, ms: performance.now() - started }
      } catch (err) {
        return { ok: false, events, ms: performance.now() - started, error: err as Error }
      }
    }))
    const results = runs.map(r => (r as PromiseFulfilledResult<{ ok: boolean, events: string[], ms: number, error?: Error }>).value)
    const refused = results.filter(r => !r.ok)
    const ran = results.filter(r => r.ok)
    t.true(ran.length >= 1)
    for (const r of refused) {
      t.regex(r.error!.message, /limit \(--max-jobs\)/)
      t.false(r.events.includes('uploaded'), 'refused before the upload')
    }
    const slowestRefusal = Math.max(...refused.map(r => r.ms))
    const firstDone = Math.min(...ran.map(r => r.ms))
    t.log(`${ran.length} ran, ${refused.length} refused; slowest refusal ${slowestRefusal.toFixed(0)} ms, first job done at ${firstDone.toFixed(0)} ms`)
    // Refusals do not wait for the running job: they come before it ends.
    if (ran.length === 1) t.true(slowestRefusal < firstDone)
  } finally {
    await cluster.stop()
  }
})
