import test from 'ava'
import { memoryChannelPair } from '../../src/protocol/framing.ts'
import { tileCoordinatorWire } from '../../src/protocol/wire.ts'
import { PROTOCOL_VERSION } from '../../src/protocol/constants.ts'
import { CoordinatorLink } from '../../src/worker/coordinator-link.ts'
import { tileChecksum } from '../../src/protocol/checksum.ts'

/** A coordinator that answers a join with a job of 64x64 RGB in 32 px tiles (halo 1, a 3x3 box blur), then each claim with `grant`. */
async function linked (grant: (rid: number) => { header: Record<string, unknown>, body: Buffer }): Promise<CoordinatorLink> {
  const [mine, theirs] = memoryChannelPair()
  const wire = tileCoordinatorWire(theirs, 'w')
  void (async () => {
    for (;;) {
      const { message } = await wire.receive({ timeoutMs: 5000 }).catch(() => ({ message: undefined }))
      if (message === undefined) return
      if (message.type === 'join') await wire.send({ type: 'job', rid: message.rid, jobId: 'j', jobKey: 'a'.repeat(64), ops: [{ op: 'box_blur', params: { size: 3 } }], width: 64, height: 64, format: { channels: 3, depth: 8 }, tileSize: 32, halo: 1, leaseMs: 1000, parkMs: 10, tiles: 4, phases: 1 })
      if (message.type === 'claim') {
        const { header, body } = grant(message.rid)
        await theirs.send(header, body)
      }
    }
  })()
  const link = new CoordinatorLink(mine, { jobId: 'j', coordinator: 'c', addrs: [] }, { requestTimeoutMs: 5000 })
  await link.join()
  return link
}

const grantOf = (rid: number, core: { x: number, y: number, width: number, height: number }, haloed: typeof core, data: Buffer): { header: Record<string, unknown>, body: Buffer } => ({
  header: { type: 'grant', rid, phase: 0, tile: 0, leaseId: 'l1', leaseMs: 1000, core, haloed, contexts: [], pixels: { bytes: data.length, checksum: tileChecksum(data) } },
  body: data,
})

test('a grant brings its haloed pixels, checked against their checksum and their rectangle', async t => {
  const haloed = { x: 0, y: 0, width: 33, height: 33 }
  const data = Buffer.alloc(33 * 33 * 3, 7)
  const link = await linked(rid => grantOf(rid, { x: 0, y: 0, width: 32, height: 32 }, haloed, data))
  const reply = await link.claim()
  if (reply.kind !== 'grant') throw new Error(reply.kind)
  t.like(reply.work.pixels, { width: 33, height: 33, channels: 3, depth: 8 })
  t.true(reply.work.pixels.data.equals(data))
  t.is(PROTOCOL_VERSION, 10)
})

test('a grant bigger than the job\'s tiles and their halo, or whose pixels fail their checksum, is refused before use', async t => {
  // A whole 64x64 image as one "tile": four times what a 32 px tile with a 1 px halo may be.
  const whole = { x: 0, y: 0, width: 64, height: 64 }
  const big = await linked(rid => grantOf(rid, whole, whole, Buffer.alloc(64 * 64 * 3)))
  await t.throwsAsync(big.claim(), { message: /grant for tile 0 of phase 0 does not fit the job/ })
  const core = { x: 0, y: 0, width: 32, height: 32 }
  const haloed = { x: 0, y: 0, width: 33, height: 33 }
  const damaged = await linked(rid => {
    const g = grantOf(rid, core, haloed, Buffer.alloc(33 * 33 * 3, 1))
    g.body[100] = 2
    return g
  })
  await t.throwsAsync(damaged.claim(), { message: /its pixels fail their checksum/ })
  const short = await linked(rid => grantOf(rid, core, haloed, Buffer.alloc(33 * 33 * 3 - 1)))
  await t.throwsAsync(short.claim(), { message: /not the 3267 of its 33x33 rectangle/ })
})
