import test from 'ava'
import { copyFile, mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import sharp from 'sharp'
import { runLocal } from '../../src/client/local.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import { submitBatch } from '../../src/client/batch.ts'
import { planBatch } from '../../src/client/batch-plan.ts'
import { parseOps, resolvePipeline } from '../../src/imaging/index.ts'
import { fixture } from '../helpers/fixtures.ts'
import { withCluster } from '../helpers/swarm.ts'

const PHOTO = fixture('exif-p3-xmp-orientation-6.jpg')

async function carried (bytes: Buffer): Promise<[boolean, boolean, boolean]> {
  const m = await sharp(bytes).metadata()
  return [m.exif?.toString('latin1').includes('Tileswarm test fixture') === true, m.icc !== undefined, m.xmp !== undefined]
}

test.serial('tiled on the swarm, a photo keeps its metadata (or drops it with strip), byte for byte as --local', async t => {
  await withCluster(2, async (cluster, dir) => {
    for (const strip of [false, true]) {
      for (const ext of ['jpg', 'webp']) {
        const flags = { ops: 'blur:sigma=2,invert', imagePath: PHOTO, ...(strip ? { strip } : {}) }
        const swarmOut = join(dir, `swarm-${strip}.${ext}`)
        const localOut = join(dir, `local-${strip}.${ext}`)
        const done = await submitToSwarm(requestFromFlags({ ...flags, out: swarmOut }), { peer: cluster.peers[0]!.addrs()[0]!, tileSize: 256 })
        t.true(Object.values(done.tilesByPeer).reduce((a, b) => a + b, 0) > 1, 'tiled')
        await runLocal(requestFromFlags({ ...flags, out: localOut }))
        const swarm = await readFile(swarmOut)
        t.true(swarm.equals(await readFile(localOut)), `strip ${strip} ${ext}`)
        t.deepEqual(await carried(swarm), [!strip, !strip, !strip], `strip ${strip} ${ext}`)
        t.is((await sharp(swarm).metadata()).width, 1280, 'upright')
      }
    }
  })
})

test.serial('a batch\'s images keep their metadata (or drop it with strip), as --local writes them', async t => {
  await withCluster(2, async (cluster, dir) => {
    const root = join(dir, 'in')
    await mkdir(root)
    await copyFile(PHOTO, join(root, 'photo.jpg'))
    const steps = resolvePipeline(parseOps('sepia'))
    for (const strip of [false, true]) {
      const out = join(dir, `out-${strip}`)
      const summary = await submitBatch({ plan: await planBatch([root], out, { recursive: false }), steps, quality: 90, ...(strip ? { strip } : {}), skipExisting: false }, { peer: cluster.peers[0]!.addrs()[0]!, tileAboveMp: 100 })
      t.is(summary.done, 1)
      const swarm = await readFile(join(out, 'photo.jpg'))
      const localOut = join(dir, `local-${strip}.jpg`)
      await runLocal(requestFromFlags({ ops: 'sepia', imagePath: PHOTO, out: localOut, ...(strip ? { strip } : {}) }))
      t.true(swarm.equals(await readFile(localOut)), `strip ${strip}`)
      t.deepEqual(await carried(swarm), [!strip, !strip, !strip], `strip ${strip}`)
    }
  })
})

test.serial('a job run whole on its coordinator (not worth spreading) keeps the metadata as --local does', async t => {
  await withCluster(1, { spread: 'auto' }, async (cluster, dir) => {
    for (const strip of [false, true]) {
      const flags = { ops: 'blur:sigma=2', imagePath: PHOTO, ...(strip ? { strip } : {}) }
      const swarmOut = join(dir, `whole-${strip}.jpg`)
      const localOut = join(dir, `whole-local-${strip}.jpg`)
      const events: string[] = []
      await submitToSwarm(requestFromFlags({ ...flags, out: swarmOut }), { peer: cluster.peers[0]!.addrs()[0]!, onEvent: e => { if (e.event === 'accepted') events.push(...e.notes) } })
      t.true(events.some(n => n.startsWith('one pipeline here')), events.join('; '))
      await runLocal(requestFromFlags({ ...flags, out: localOut }))
      const swarm = await readFile(swarmOut)
      t.true(swarm.equals(await readFile(localOut)), `strip ${strip}`)
      t.deepEqual(await carried(swarm), [!strip, !strip, !strip], `strip ${strip}`)
    }
  })
})
