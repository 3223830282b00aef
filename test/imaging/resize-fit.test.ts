import test from 'ava'
import sharp from 'sharp'
import { parseOps, planJob, resolvePipeline, runPipeline, runTiled, samples, type RawImage } from '../../src/imaging/index.ts'
import { noiseImage, sameImage } from '../helpers/images.ts'

const run = async (image: RawImage, ops: string): Promise<RawImage> => await runPipeline(image, resolvePipeline(parseOps(ops)))
const FITS = ['fill', 'inside', 'outside', 'cover', 'contain'] as const

test('every fit, with and without shrink_only, gives sharp\'s own resize at the same settings: size and pixels', async t => {
  const boxes = [[120, 120], [50, 200], [300, 40], [64, 48], [500, 500]] as const
  for (const [w0, h0, channels] of [[160, 90, 3], [70, 140, 4], [97, 33, 1]] as const) {
    const image = noiseImage(w0, h0, { channels, depth: 8 }, w0)
    for (const fit of FITS) {
      for (const shrinkOnly of [false, true]) {
        for (const [w, h] of boxes) {
          const ops = `resize:width=${w}:height=${h}:fit=${fit}:shrink_only=${shrinkOnly}:kernel=cubic`
          const ours = await run(image, ops)
          const own = await sharp(samples(image), { raw: { width: w0, height: h0, channels } })
            .resize({ width: w, height: h, fit, withoutEnlargement: shrinkOnly, kernel: 'cubic' }).toColourspace(channels === 1 ? 'b-w' : 'srgb').raw().toBuffer({ resolveWithObject: true })
          const where = `${w0}x${h0}x${channels} ${ops}`
          t.deepEqual([ours.width, ours.height], [own.info.width, own.info.height], where)
          const plan = planJob(resolvePipeline(parseOps(ops)), { width: w0, height: h0, format: { channels, depth: 8 } })
          t.deepEqual([plan.width, plan.height], [ours.width, ours.height], `planned: ${where}`)
          t.true(ours.data.equals(own.data), where)
        }
      }
    }
  }
})

test('"at most 2048 on the long side" for mixed orientations: inside with shrink_only', async t => {
  const ops = 'resize:width=2048:height=2048:fit=inside:shrink_only=true'
  const landscape = await run(noiseImage(4096, 1024, { channels: 3, depth: 8 }, 1), ops)
  t.deepEqual([landscape.width, landscape.height], [2048, 512])
  const portrait = await run(noiseImage(1000, 3000, { channels: 3, depth: 8 }, 2), ops)
  t.deepEqual([portrait.width, portrait.height], [683, 2048])
  const small = noiseImage(300, 200, { channels: 3, depth: 8 }, 3)
  t.true(sameImage(await run(small, ops), small), 'a small one is left as it is')
})

test('one side or a scale keeps the aspect ratio, whatever the fit; shrink_only leaves a smaller image alone', async t => {
  const image = noiseImage(200, 100, { channels: 3, depth: 8 }, 4)
  for (const fit of FITS) t.deepEqual(await run(image, `resize:width=100:fit=${fit}`).then(o => [o.width, o.height]), [100, 50], fit)
  t.true(sameImage(await run(image, 'resize:width=400:shrink_only=true'), image))
  t.true(sameImage(await run(image, 'resize:scale=2:shrink_only=true'), image))
  t.deepEqual(await run(image, 'resize:scale=0.5:shrink_only=true').then(o => [o.width, o.height]), [100, 50])
  t.deepEqual(await run(image, 'resize:width=50:height=80').then(o => [o.width, o.height]), [50, 80], 'fill is still the default: stretched')
})

test('a fitted resize, then tiles, gives the whole-image pipeline\'s pixels', async t => {
  const image = noiseImage(130, 90, { channels: 4, depth: 16 }, 5)
  for (const fit of FITS) {
    const ops = `resize:width=80:height=80:fit=${fit},blur:sigma=1.5`
    t.true(sameImage(await runTiled(image, resolvePipeline(parseOps(ops)), 16), await run(image, ops)), fit)
  }
})
