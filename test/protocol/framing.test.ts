import test from 'ava'
import fc from 'fast-check'
import { FramedChannel, duplexPair, memoryChannelPair, type Channel, type Duplex } from '../../src/protocol/framing.ts'
import { BODY_CHUNK_BYTES } from '../../src/protocol/constants.ts'

function pair (maxBodyBytes = 64 * 1024 * 1024): [Channel, Channel] {
  const [a, b] = duplexPair()
  return [new FramedChannel(a, { maxBodyBytes }), new FramedChannel(b, { maxBodyBytes })]
}

// Both kinds of channel keep one contract; the framed one is also the wire's.
const kinds: Array<[string, () => [Channel, Channel]]> = [['framed', () => pair()], ['in memory', memoryChannelPair]]

for (const [kind, makePair] of kinds) {
  test(`${kind}: property: headers and bodies of any size arrive whole and in order`, async t => {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ header: fc.dictionary(fc.string({ maxLength: 8 }).filter(k => k !== 'bodyBytes' && k !== '__proto__'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), size: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: BODY_CHUNK_BYTES - 2, max: BODY_CHUNK_BYTES * 2 + 3 })) }), { minLength: 1, maxLength: 5 }),
      async messages => {
        const [a, b] = makePair()
        const sent = messages.map(m => ({ header: m.header, body: m.size < 0 ? undefined : Buffer.alloc(m.size, m.size % 251) }))
        const sending = (async () => { for (const m of sent) await a.send(m.header, m.body) })()
        for (const m of sent) {
          const got = await b.receive({ timeoutMs: 5000 })
          const { bodyBytes, ...header } = got.header
          if (JSON.stringify(header) !== JSON.stringify(JSON.parse(JSON.stringify(m.header)))) return false
          if ((m.body?.length ?? 0) === 0 ? got.body !== undefined : !got.body?.equals(m.body!) || bodyBytes !== m.body!.length) return false
        }
        await sending
        return true
      },
    ), { numRuns: 60 })
    t.pass()
  })

  test(`${kind}: silence past the timeout ends the wait with a clear error`, async t => {
    const [, b] = makePair()
    await t.throwsAsync(b.receive({ timeoutMs: 50 }), { name: 'NetworkError', message: 'no answer within 50 ms' })
  })

  test(`${kind}: a closed stream ends receive with a clear error, after what was sent before it`, async t => {
    const [a, b] = makePair()
    await a.send({ type: 'last' })
    await a.close()
    t.is((await b.receive({ timeoutMs: 2000 })).header.type, 'last')
    await t.throwsAsync(b.receive({ timeoutMs: 2000 }), { name: 'NetworkError', message: 'the remote closed the stream' })
    await t.throwsAsync(a.send({ type: 'late' }), { name: 'NetworkError', message: 'stream is closed' })
  })

  test(`${kind}: a message sent while a large body is under way arrives after it, whole`, async t => {
    const [a, b] = makePair()
    const big = Buffer.alloc(8 * BODY_CHUNK_BYTES + 5, 9)
    const sending = a.send({ type: 'result' }, big)
    // A heartbeat sent mid-body must not land inside it.
    const heartbeat = a.send({ type: 'progress' })
    const first = await b.receive({ timeoutMs: 5000 })
    t.is(first.header.type, 'result')
    t.true(first.body!.equals(big))
    t.is((await b.receive({ timeoutMs: 5000 })).header.type, 'progress')
    await Promise.all([sending, heartbeat])
  })

  test(`${kind}: an abort ends a receive waiting on the other side`, async t => {
    const [a, b] = makePair()
    const waiting = b.receive({ timeoutMs: 5000 })
    a.abort(new Error('gone'))
    await t.throwsAsync(waiting, { name: 'NetworkError' })
    t.true(a.isClosed)
  })
}

test('in memory: a body is handed over, not copied', async t => {
  const [a, b] = memoryChannelPair()
  const body = Buffer.alloc(1 << 20, 7)
  await a.send({ type: 'tile' }, body)
  const got = await b.receive({ timeoutMs: 1000 })
  t.is(got.body!.buffer, body.buffer)
  t.deepEqual(got.header, { type: 'tile', bodyBytes: 1 << 20 })
})

test('framed: a body over the limit is refused from its announced size, before it is read', async t => {
  const [a, b] = pair(1000)
  void a.send({ type: 'x' }, Buffer.alloc(5000))
  await t.throwsAsync(b.receive({ timeoutMs: 2000 }), { name: 'LimitExceededError', message: /5000 bytes is over the limit of 1000/ })
})


/**
 * A transport that takes one frame whenever `take()` is called, like a
 * remote reading slowly; what it took is kept. Closing it ends the write.
 */
function slowTransport (): { duplex: Duplex, take: () => void, taken: Uint8Array[], aborted: () => Error | undefined } {
  const taken: Uint8Array[] = []
  let permits = 0
  let wake: (() => void) | undefined
  let abortedWith: Error | undefined
  let closed = false
  return {
    taken,
    aborted: () => abortedWith,
    take: () => { permits++; wake?.() },
    duplex: {
      source: (async function * () {})(),
      sink: async source => {
        for await (const frame of source) {
          while (permits === 0) await new Promise<void>(resolve => { wake = resolve })
          // Like a libp2p stream: closing it stops the write under way.
          if (closed) return
          permits--
          taken.push(frame.subarray())
        }
      },
      abort: err => { abortedWith = err },
      close: async () => { closed = true },
    },
  }
}

test('framed: close waits for a slow reader as long as it keeps reading, past any fixed bound', async t => {
  const remote = slowTransport()
  const channel = new FramedChannel(remote.duplex, { maxBodyBytes: 1 << 20, drainIdleMs: 500 })
  const frames = 1 + 40
  const sent = channel.send({ type: 'result' }, Buffer.alloc(40 * BODY_CHUNK_BYTES, 3)).then(async () => { await channel.close() })
  // One frame every 60 ms: 2.5 s in all, longer than the old fixed 2 s, never idle for 500 ms.
  const reader = setInterval(remote.take, 60)
  try {
    await sent
  } finally {
    clearInterval(reader)
  }
  t.is(remote.taken.length, frames)
  t.is(remote.aborted(), undefined)
})

test('framed: close gives up, clearly, on a remote that stops reading', async t => {
  const remote = slowTransport()
  const channel = new FramedChannel(remote.duplex, { maxBodyBytes: 1 << 20, drainIdleMs: 200 })
  remote.take()
  remote.take()
  const sending = channel.send({ type: 'result' }, Buffer.alloc(3 * BODY_CHUNK_BYTES))
  await t.throwsAsync(sending.then(async () => { await channel.close() }), { name: 'NetworkError', message: /took nothing for 0.2 s/ })
  t.is(remote.taken.length, 2)
  t.truthy(remote.aborted())
})

test('framed: a send waits for the transport to take its body (a few MiB may queue, not the whole body)', async t => {
  const remote = slowTransport()
  const channel = new FramedChannel(remote.duplex, { maxBodyBytes: 1 << 20 })
  let sent = false
  const sending = channel.send({ type: 'upload' }, Buffer.alloc(20 * BODY_CHUNK_BYTES)).then(() => { sent = true })
  const settle = async (): Promise<void> => { for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve)) }
  for (let i = 0; i < 10; i++) remote.take()
  await settle()
  t.false(sent, 'half the body is still with the sender')
  for (let i = 0; i < 11; i++) remote.take()
  await sending
  t.true(remote.taken.length >= 21 - 5, `${remote.taken.length} taken when the send returned`)
})

test('framed: close reports a delivery the transport failed', async t => {
  const failing: Duplex = { source: (async function * () {})(), sink: async source => { for await (const _ of source) throw new Error('stream reset') } }
  const channel = new FramedChannel(failing, { maxBodyBytes: 1 << 20 })
  await channel.send({ type: 'result' }).catch(() => {})
  await t.throwsAsync(channel.close(), { name: 'NetworkError', message: /stream reset/ })
})

test('framed: an abort ends a close that waits on a remote taking nothing', async t => {
  const remote = slowTransport()
  const channel = new FramedChannel(remote.duplex, { maxBodyBytes: 1 << 20 })
  void channel.send({ type: 'result' }, Buffer.alloc(8 * BODY_CHUNK_BYTES)).catch(() => {})
  const closing = channel.close()
  channel.abort(new Error('the remote went away'))
  await t.throwsAsync(closing, { name: 'NetworkError' })
})
