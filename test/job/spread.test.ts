import test from 'ava'
import { CostModel } from '../../src/job/costs.ts'
import { autoTileSize, decideSpread, swarmShape, type SwarmShape } from '../../src/job/spread.ts'
import { TrustRecords } from '../../src/job/verify.ts'
import { parseOps, planJob, resolvePipeline } from '../../src/imaging/index.ts'

const rgb = { channels: 3 as const, depth: 8 as const }

/** A cost model with fixed figures (ns a pixel): what the decision is made of, without a measurement. */
function costs (compute: number, decode = 10, encode = 8): Pick<CostModel, 'compute' | 'decode' | 'encode'> {
  return { compute: async () => compute, decode: () => decode, encode: () => encode }
}

function job (ops: string, width = 6000, height = 4000) {
  return { plan: planJob(resolvePipeline(parseOps(ops)), { width, height, format: rgb }), inputPixels: width * height, container: 'jpeg', format: 'jpeg' as const }
}

const machines = (total: number, checkShare = 0): SwarmShape => ({ here: 1, total, colocated: false, cores: 16, checkShare })

test('one pipeline alone, and for light work; tiles for heavy work, on machines of their own', async t => {
  const heavy = job('median:size=5')
  t.is((await decideSpread(costs(190), heavy, machines(1), 'auto')).mode, 'whole', 'no other peer')
  t.regex((await decideSpread(costs(190), heavy, machines(1), 'auto')).reason, /no other peer to share it with/)
  const spread = await decideSpread(costs(190), heavy, machines(2), 'auto')
  t.is(spread.mode, 'tiles')
  t.true(spread.tilesS < 0.8 * spread.wholeS)
  t.regex(spread.reason, /^spread: \d+\.\d\d s on 2 slots against \d+\.\d\d s as one pipeline$/)
  // A blur: a few ns a pixel beside a decode and an encode.
  const light = await decideSpread(costs(4), job('blur:sigma=3'), machines(16), 'auto')
  t.is(light.mode, 'whole')
  t.regex(light.reason, /spreading would not pay/)
  t.is((await decideSpread(costs(4), job('blur:sigma=3'), machines(16), 'always')).mode, 'tiles', '--spread always')
})

test('peers on this one machine share its cores: moving pixels and checks count against spreading', async t => {
  const heavy = job('median:size=5')
  const apart = await decideSpread(costs(190), heavy, machines(2), 'auto')
  const together = await decideSpread(costs(190), heavy, { ...machines(2), colocated: true, cores: 2 }, 'auto')
  t.true(together.tilesS > apart.tilesS)
  // A new peer's first results are all checked: on two shared cores that is the margin gone.
  const checked = await decideSpread(costs(190), heavy, { ...machines(2), colocated: true, cores: 2, checkShare: 0.3 }, 'auto')
  t.is(checked.mode, 'whole')
  // More slots than cores on one machine buy nothing: only more pixels on the move.
  const crowded = await decideSpread(costs(190), heavy, { ...machines(8), colocated: true, cores: 2 }, 'auto')
  t.true(crowded.tilesS >= together.tilesS)
})

test('a job in phases counts its work and its pixels\' trips once per phase', async t => {
  const canny = job('canny')
  t.is(canny.plan.phases.length, 2)
  const spread = await decideSpread(costs(50), canny, machines(2), 'auto')
  const one = await decideSpread(costs(50), job('sobel'), machines(2), 'auto')
  t.true(spread.tilesS > one.tilesS, 'two phases cost more spread than one')
  t.is(spread.wholeS, one.wholeS, 'as one pipeline, the work once')
})

test('tiles of about a megapixel, four per slot at least, 256 to 1024 px in steps of 64', t => {
  t.is(autoTileSize(6000, 4000, 2), 1024)
  t.is(autoTileSize(6000, 4000, 16), 640)
  t.is(autoTileSize(12000, 8400, 16), 1024)
  t.is(autoTileSize(640, 480, 2), 256)
  t.is(autoTileSize(64, 64, 1), 256)
  for (const slots of [1, 3, 7, 100, 10_000]) t.is(autoTileSize(5000, 3000, slots) % 64, 0)
})

test('the checks a job would add, from each peer\'s record: a new peer\'s first result always, then fewer', t => {
  const trust = new TrustRecords()
  const view = { here: 1, cores: 2, peers: [{ peerId: 'new', slots: 1, local: true }] }
  const fresh = swarmShape(view, 24, trust, 0.02)
  t.true(fresh.colocated)
  t.is(fresh.total, 2)
  // 12 results: the first checked, then half, halving every 4 passed.
  t.true(fresh.checkShare > 0.15 && fresh.checkShare < 0.35, String(fresh.checkShare))
  trust.of('new').agreed = 40
  t.true(swarmShape(view, 24, trust, 0.02).checkShare < 0.02, 'at the floor')
  t.is(swarmShape(view, 24, trust, 'off').checkShare, 0)
  t.is(swarmShape(view, 24, trust, 'all').checkShare, 0.5, 'every remote tile once more')
  t.false(swarmShape({ ...view, peers: [...view.peers, { peerId: 'far', slots: 4, local: false }] }, 24, trust, 'off').colocated)
})

test('the cost model: a pipeline measured once on a sample (less a pass\'s fixed cost); decode and encode priors moved by real jobs', async t => {
  const model = new CostModel()
  const steps = resolvePipeline(parseOps('median:size=5'))
  const median = await model.compute(steps, rgb)
  t.true(median > 0 && Number.isFinite(median))
  const invert = await model.compute(resolvePipeline(parseOps('invert')), rgb)
  t.true(invert < median, `invert ${invert} ns/px, median ${median}`)
  t.is(await model.compute([], rgb), 0)
  const before = model.decode('jpeg')
  model.decoded('jpeg', 1_000_000, before * 1_000_000 * 3)
  t.true(model.decode('jpeg') > before)
  model.encoded('png', 1_000_000, 0)
  t.is(model.encode('png'), new CostModel().encode('png'), 'a nonsense measurement moves nothing')
})
