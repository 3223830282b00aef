import test from 'ava'
import { randomFillSync } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import sharp from 'sharp'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import { fixture } from '../helpers/fixtures.ts'
import { withCluster } from '../helpers/swarm.ts'

// Results far larger than any frame or buffer the wire holds at once must arrive whole.
const raw = async (path: string): Promise<Buffer> => await sharp(path, { limitInputPixels: false }).raw().toBuffer()

function isInverse (a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if ((a[i]! ^ b[i]!) !== 0xff) return false
  return true
}

test.serial('a result of over 512 MB of raw pixels arrives whole', async t => {
  await withCluster(1, { slots: 2, tileSize: 1024 }, async (cluster, dir) => {
    const [width, height] = [14000, 13000]
    t.true(width * height * 3 > 512 * 1024 * 1024)
    const input = join(dir, 'big.jpg')
    await sharp(fixture('flowers.jpeg')).resize(width, height, { fit: 'fill' }).jpeg({ quality: 80 }).toFile(input)
    const out = join(dir, 'big-inverted.tif')
    const done = await submitToSwarm(requestFromFlags({ ops: 'invert', imagePath: input, out }), { peer: cluster.peers[0]!.addrs()[0]! })
    t.is(done.width * done.height, width * height)
    t.true(isInverse(await raw(input), await raw(out)), 'the output is the inverse of the input, every byte')
  })
})

test.serial('a result file of over 300 MB arrives whole', async t => {
  await withCluster(1, { slots: 2, tileSize: 1024 }, async (cluster, dir) => {
    const [width, height] = [10500, 10000]
    const pixels = randomFillSync(Buffer.allocUnsafe(width * height * 3))
    const input = join(dir, 'noise.tif')
    await sharp(pixels, { raw: { width, height, channels: 3 } }).tiff({ compression: 'none' }).toFile(input)
    const out = join(dir, 'noise-inverted.tif')
    const done = await submitToSwarm(requestFromFlags({ ops: 'invert', imagePath: input, out }), { peer: cluster.peers[0]!.addrs()[0]! })
    t.true(done.bytes > 300 * 1024 * 1024, `${done.bytes} bytes`)
    t.is((await stat(out)).size, done.bytes)
    t.true(isInverse(pixels, await raw(out)), 'the output is the inverse of the input, every byte')
  })
})
