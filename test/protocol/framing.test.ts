import test from 'ava'
import fc from 'fast-check'
import { Channel, duplexPair } from '../../src/protocol/framing.ts'
import { BODY_CHUNK_BYTES } from '../../src/protocol/constants.ts'

function pair (maxBodyBytes = 64 * 1024 * 1024): [Channel, Channel] {
  const [a, b] = duplexPair()
  return [new Channel(a, { maxBodyBytes }), new Channel(b, { maxBodyBytes })]
}

test('property: headers and bodies of any size arrive whole and in order', async t => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.record({ header: fc.dictionary(fc.string({ maxLength: 8 }).filter(k => k !== 'bodyBytes' && k !== '__proto__'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), size: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: BODY_CHUNK_BYTES - 2, max: BODY_CHUNK_BYTES * 2 + 3 })) }), { minLength: 1, maxLength: 5 }),
    async messages => {
      const [a, b] = pair()
      const sent = messages.map(m => ({ header: m.header, body: m.size < 0 ? undefined : Buffer.alloc(m.size, m.size % 251) }))
      const sending = (async () => { for (const m of sent) await a.send(m.header, m.body) })()
      for (const m of sent) {
        const got = await b.receive({ timeoutMs: 5000 })
        const { bodyBytes, ...header } = got.header
        if (JSON.stringify(header) !== JSON.stringify(JSON.parse(JSON.stringify(m.header)))) return false
        if ((m.body?.length ?? 0) === 0 ? got.body !== undefined : !got.body?.equals(m.body!)) return false
        void bodyBytes
      }
      await sending
      return true
    },
  ), { numRuns: 60 })
  t.pass()
})

test('a body over the limit is refused from its announced size, before it is read', async t => {
  const [a, b] = pair(1000)
  void a.send({ type: 'x' }, Buffer.alloc(5000))
  await t.throwsAsync(b.receive({ timeoutMs: 2000 }), { name: 'LimitExceededError', message: /5000 bytes is over the limit of 1000/ })
})

test('silence past the timeout ends the wait with a clear error', async t => {
  const [, b] = pair()
  await t.throwsAsync(b.receive({ timeoutMs: 50 }), { name: 'NetworkError', message: 'no answer within 50 ms' })
})

test('a closed stream ends receive with a clear error, not a hang', async t => {
  const [a, b] = pair()
  await a.close()
  await t.throwsAsync(b.receive({ timeoutMs: 2000 }), { name: 'NetworkError', message: 'the remote closed the stream' })
})
