import test from 'ava'
import { JobCancelledError, JobFailedError, PeerLeavingError } from '../../src/common/errors.ts'
import { memoryChannelPair, type Channel } from '../../src/protocol/framing.ts'
import { MAX_PLACED_TOLD, PROTOCOL_VERSION } from '../../src/protocol/constants.ts'
import type { JobsTopicMessage } from '../../src/protocol/messages.ts'
import { submitServerWire } from '../../src/protocol/wire.ts'
import { ClientProgress, type ProgressMessage } from '../../src/job/client-progress.ts'
import { HostedRun } from '../../src/job/hosted-run.ts'
import { TileProgress } from '../../src/job/tile-progress.ts'
import { manualClock } from '../helpers/clock.ts'

/** A shell with its peer faked: what it logs, publishes and tells this peer's worker is kept. */
function shell (options: { noun?: 'job' | 'batch' } = {}) {
  const logs: string[] = []
  const published: JobsTopicMessage[] = []
  const finished: string[] = []
  const unregistered: string[] = []
  const hosted = new HostedRun({
    peerId: 'self',
    clock: manualClock(),
    log: line => { logs.push(line) },
    publish: async message => { published.push(message) },
    tiles: { register: () => {}, unregister: jobId => { unregistered.push(jobId) } },
    worker: { addJob: () => {}, jobFinished: jobId => { finished.push(jobId) } },
    events: new EventTarget(),
    swarmPeers: async () => [{ peerId: 'self', addrs: [] }, { peerId: 'other', addrs: ['/ip4/10.0.0.2/tcp/1'] }],
    addrs: () => ['/ip4/10.0.0.1/tcp/1'],
  }, { client: 'client-peer-id', noun: options.noun ?? 'job' })
  const [server, client] = memoryChannelPair()
  return { hosted, wire: submitServerWire(server), client, logs, published, finished, unregistered }
}

async function heard (client: Channel): Promise<Array<Record<string, unknown>>> {
  const messages: Array<Record<string, unknown>> = []
  try {
    for (;;) messages.push((await client.receive({ timeoutMs: 1000 })).header)
  } catch {
    return messages
  }
}

test('a job that runs to its end: done, and the swarm and this peer\'s worker hear it is over', async t => {
  const { hosted, wire, published, finished, unregistered } = shell()
  const cleaned: string[] = []
  const outcome = await hosted.run(wire, async () => {
    hosted.adopt({ cancel: () => { t.fail('nothing to cancel') }, holders: () => [] })
  }, { cleanup: () => { cleaned.push('cleanup') } })
  t.is(outcome, 'done')
  t.deepEqual(cleaned, ['cleanup'])
  t.true(hosted.over.signal.aborted)
  t.deepEqual(published, [{ type: 'finished', v: PROTOCOL_VERSION, jobId: hosted.jobId, coordinator: 'self', outcome: 'done' }])
  t.deepEqual(finished, [hosted.jobId])
  t.deepEqual(unregistered, [hosted.jobId])
})

test('refused before its coordinator is made: the client hears why, the log says refused, the swarm hears nothing', async t => {
  const { hosted, wire, client, logs, published } = shell()
  const outcome = await hosted.run(wire, async () => { throw new JobFailedError('no such thing') }, { cleanup: () => {} })
  t.is(outcome, 'failed')
  t.like((await heard(client))[0], { type: 'error', name: 'JobFailedError', message: 'no such thing' })
  t.regex(logs[0]!, /^job .* from .*: refused: no such thing$/)
  t.deepEqual(published, [])
})

test('this peer leaving: the work is cancelled with its reason, the client hears who else is there and who holds work, then why', async t => {
  const { hosted, wire, client, logs, published } = shell({ noun: 'batch' })
  const leaving = new PeerLeavingError('the coordinating peer is shutting down')
  const cancelled: Error[] = []
  const outcome = await hosted.run(wire, async () => {
    const { promise, reject } = Promise.withResolvers<void>()
    hosted.adopt({ cancel: reason => { cancelled.push(reason); reject(reason) }, holders: () => ['other', 'self'] })
    hosted.accepted = true
    hosted.leave(leaving)
    await promise
  }, { cleanup: () => {} })
  t.is(outcome, 'cancelled')
  t.is(cancelled[0], leaving)
  const messages = await heard(client)
  t.deepEqual(messages[0], { type: 'peers', peers: [{ peerId: 'other', addrs: ['/ip4/10.0.0.2/tcp/1'] }], holders: [{ peerId: 'other', addrs: ['/ip4/10.0.0.2/tcp/1'] }] })
  t.like(messages[1], { type: 'error', name: 'PeerLeavingError' })
  t.regex(logs[0]!, /^batch .* from .*: cancelled: the coordinating peer is shutting down$/)
  t.like(published[0], { type: 'finished', outcome: 'cancelled' })
})

test('a cancel (its submitter or the operator): the work ends with it, cancelled, the client told why and the swarm that it is over; one before the coordinator is made ends it as it is made', async t => {
  const { hosted, wire, client, logs, published } = shell()
  const reason = new JobCancelledError('job x was cancelled by its submitter')
  const cancelled: Error[] = []
  const outcome = await hosted.run(wire, async () => {
    const { promise, reject } = Promise.withResolvers<void>()
    hosted.cancel(reason)
    hosted.adopt({ cancel: err => { cancelled.push(err); reject(err) }, holders: () => [] })
    hosted.accepted = true
    await promise
  }, { cleanup: () => {} })
  t.is(outcome, 'cancelled')
  t.is(cancelled[0], reason)
  t.like((await heard(client)).at(-1), { type: 'error', name: 'JobCancelledError', message: 'job x was cancelled by its submitter' })
  t.regex(logs[0]!, /: cancelled: job x was cancelled by its submitter$/)
  t.like(published[0], { type: 'finished', outcome: 'cancelled' })
})

test('the client hanging up mid-job cancels it; speaking out of turn fails it', async t => {
  for (const [client, outcome, logged] of [
    [(c: Channel) => { c.abort(new Error('^C')) }, 'cancelled', /: cancelled: the client went away$/],
    [(c: Channel) => { void c.send({ type: 'upload' }, Buffer.from('late')) }, 'failed', /: failed: the client spoke out of turn$/],
  ] as const) {
    const s = shell()
    const ran = s.hosted.run(s.wire, async () => {
      const { promise, reject } = Promise.withResolvers<void>()
      s.hosted.adopt({ cancel: reject, holders: () => [] })
      s.hosted.accepted = true
      s.hosted.listen()
      client(s.client)
      await promise
    }, { cleanup: () => {} })
    t.is(await ran, outcome)
    t.regex(s.logs[0]!, logged)
  }
})

test('tiles placed are told with the next report, at most MAX_PLACED_TOLD to a message; reports come at most every 100 ms, the last of a burst not lost', t => {
  const clock = manualClock()
  const sent: ProgressMessage[] = []
  const progress = new ClientProgress(clock, message => { sent.push(message) })
  let done = 0
  const tiles = new TileProgress({ clock, progress, counts: () => ({ done, total: 10_000, workers: 1 }), running: () => true })
  for (let tile = 0; tile < MAX_PLACED_TOLD + 10; tile++) tiles.place(tile % 2 === 0 ? 'a' : 'b', tile)
  tiles.now()
  t.is(sent.length, 2)
  t.is(Object.values(sent[0]!.placed!).flat().length, MAX_PLACED_TOLD)
  t.is(Object.values(sent[1]!.placed!).flat().length, 10)
  // The heartbeat repeats the counts, not the tiles.
  t.is(progress.last?.placed, undefined)

  clock.advance(50)
  done = 1
  tiles.soon(done, 10_000)
  t.is(sent.length, 2, 'too soon: it waits')
  done = 2
  tiles.soon(done, 10_000)
  clock.advance(50)
  t.is(sent.length, 3)
  t.like(sent[2], { phase: 'tiles', done: 2 })
  tiles.soon(10_000, 10_000)
  t.is(sent.length, 4, 'every tile in: at once')
  tiles.stop()
})
