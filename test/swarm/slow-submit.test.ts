import test from 'ava'
import { multiaddr } from '@multiformats/multiaddr'
import { Cluster, until } from '../../sim/cluster.ts'
import { createClientNode } from '../../src/net/node.ts'
import { PROTOCOL_VERSION, SUBMIT_PROTOCOL } from '../../src/protocol/constants.ts'
import { fixture } from '../helpers/fixtures.ts'
import { swarmVersusLocal, tempDir } from '../helpers/swarm.ts'

/** One length-prefixed frame: its kind (H, B), then its bytes. */
function frame (kind: number, bytes: Uint8Array): Buffer {
  const length = bytes.length + 1
  const prefix: number[] = []
  for (let n = length; ; n >>>= 7) {
    if (n < 0x80) { prefix.push(n); break }
    prefix.push((n & 0x7f) | 0x80)
  }
  return Buffer.concat([Buffer.from(prefix), Buffer.from([kind]), bytes])
}
const header = (message: unknown): Buffer => frame(0x48, Buffer.from(JSON.stringify(message)))

test.serial('a submit that trickles its upload is dropped at the pace rule, says why, and frees its admission for the next job', async t => {
  const lines: string[] = []
  const logged = new EventTarget()
  // One job at a time: a trickle that kept its admission would shut the next job out.
  const cluster = await Cluster.start(1, { maxJobs: 1, uploadPace: { minBytesPerS: 64 * 1024, graceMs: 400, timeoutMs: 20_000 }, logFor: () => line => { lines.push(line); logged.dispatchEvent(new Event('log')) } })
  const client = await createClientNode()
  let stop!: () => void
  const stopped = new Promise<void>(resolve => { stop = resolve })
  try {
    const coordinator = cluster.peers[0]!
    const stream = await client.dialProtocol(multiaddr(coordinator.addrs()[0]!), SUBMIT_PROTOCOL)
    const started = performance.now()
    let sent = 0
    // A megabyte announced, a byte at a time, as long as the peer will take it.
    void stream.sink((async function * () {
      yield header({ type: 'submit', v: PROTOCOL_VERSION, ops: [{ op: 'invert' }], format: 'png', quality: 90, bytes: 1_000_000 })
      yield header({ type: 'upload', bodyBytes: 1_000_000 })
      while (sent < 1_000_000) {
        const more = await Promise.race([new Promise<boolean>(resolve => { setTimeout(() => { resolve(true) }, 20) }), stopped.then(() => false)])
        if (!more) return
        sent++
        yield frame(0x42, Buffer.from([sent & 0xff]))
      }
    })()).catch(() => {})
    await until(() => coordinator.submissions.activeJobs === 1, [logged], ['log'], 5000, 'the submission admitted').catch(() => {})
    await until(() => lines.some(l => /dropped: the upload brought \d+ bytes in .* s: this peer takes uploads that average 64 kB\/s or more after their first 0\.4 s \(--min-upload-kbps\)/.test(l)), [logged], ['log'], 10_000, 'the trickle dropped')
    const ms = performance.now() - started
    t.log(`dropped after ${Math.round(ms)} ms, ${sent} bytes trickled; admissions left held: ${coordinator.submissions.activeJobs}`)
    t.is(coordinator.submissions.activeJobs, 0)
    // The client hears why before the stream goes.
    const heard: string[] = []
    try {
      for await (const chunk of stream.source) heard.push(Buffer.from(chunk.subarray()).toString('latin1'))
    } catch {}
    t.regex(heard.join(''), /"type":"error".*--min-upload-kbps/)
    // Its admission is free: the next job, one at a time, runs.
    const dir = await tempDir()
    const next = await swarmVersusLocal(coordinator, fixture('low-contrast.jpg'), 'invert', dir, 64)
    t.true(next.swarm.equals(next.local))
  } finally {
    stop()
    await client.stop()
    await cluster.stop()
  }
})
