import test from 'ava'
import type { JobCoordinator } from '../../src/job/coordinator.ts'
import { noisePng, slowProcessor, swarmVersusLocal, withCluster } from '../helpers/swarm.ts'
import { fixture } from '../helpers/fixtures.ts'
import type { TileProcessor } from '../../src/worker/tile-lane.ts'

const serial = test.serial

serial('three phases (equalize, canny, pixels) across three peers, a worker crashed in the middle phase: output exact', async t => {
  await withCluster(3, { leaseMs: 3000, process: slowProcessor(5) }, async (cluster, dir) => {
    const coordinator = cluster.peers[0]!
    const victim = cluster.peers[2]!
    // Each (phase, tile) placed, and how often; the victim crashes once it has finished a tile of phase 1 and holds more.
    const placed = new Map<string, number>()
    let struckIn: number | undefined
    let phases = 0
    coordinator.events.addEventListener('job', evt => {
      const job = (evt as CustomEvent<JobCoordinator>).detail
      phases = job.plan.phases.length
      job.on('placed', (tile, by) => {
        const key = `${job.phase}/${tile}`
        placed.set(key, (placed.get(key) ?? 0) + 1)
        if (by === victim.peerId && job.phase === 1 && struckIn === undefined && victim.worker.heldLeases > 0) {
          struckIn = job.phase
          void cluster.crash(victim)
        }
      })
    })
    const run = await swarmVersusLocal(coordinator, await noisePng(dir, 300, 220, { channels: 3, depth: 8 }, 4), 'blur:2,equalize,canny:low=60:high=160,dilate', dir, 32)
    t.is(struckIn, 1, 'the victim crashed in the middle phase')
    t.true(run.swarm.equals(run.local), 'the swarm\'s output is the whole-image run\'s, byte for byte')
    t.is(phases, 3)
    const tiles = 10 * 7
    t.is(placed.size, phases * tiles, 'every tile of every phase placed')
    t.true([...placed.values()].every(n => n === 1), 'none placed twice')
    t.true(run.done.leases.released + run.done.leases.expired >= 1, JSON.stringify(run.done.leases))
  })
})

serial('geometry first, then tiles: rotate and resize run on each worker, the rest is tiled and exact', async t => {
  await withCluster(2, async (cluster, dir) => {
    const photo = fixture('flowers.jpeg')
    const rotated = await swarmVersusLocal(cluster.peers[0]!, photo, 'rotate:90,blur:2,threshold:auto', dir, 128, 'rotated')
    t.true(rotated.swarm.equals(rotated.local))
    t.is(rotated.done.width, 1080)
    t.is(rotated.done.height, 1920)
    const resized = await swarmVersusLocal(cluster.peers[1]!, photo, 'crop:100:50:1500:900,resize:width=640,edge_detection', dir, 100, 'resized')
    t.true(resized.swarm.equals(resized.local))
    t.is(resized.done.width, 640)
    t.true(Object.keys(resized.done.tilesByPeer).length >= 1)
  })
})

serial('a crop outside the image and a resize past --max-pixels are refused with the reason', async t => {
  await withCluster(1, { maxPixels: 4_000_000 }, async (cluster, dir) => {
    const input = await noisePng(dir, 200, 100)
    const crop = await t.throwsAsync(swarmVersusLocal(cluster.peers[0]!, input, 'crop:150:0:100:10', dir))
    t.regex(crop!.message, /crop must lie inside the image of 200x100, got left=150/)
    const big = await t.throwsAsync(swarmVersusLocal(cluster.peers[0]!, input, 'resize:scale=16,blur', dir))
    t.regex(big!.message, /resize would make an image of 5.1 MP: over this peer's limit of 4.0 MP \(--max-pixels\)/)
  })
})

serial('a computation that throws on every peer fails the job with its reason instead of retrying forever', async t => {
  await withCluster(2, { process: async () => { throw new Error('no such luck') } }, async (cluster, dir) => {
    const err = await t.throwsAsync(swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 100, 80), 'blur', dir, 32))
    t.is(err!.name, 'JobFailedError')
    t.regex(err!.message, /^processing failed on (a peer|2 peers): no such luck/)
  })
})

serial('one peer that cannot compute does not fail a job the others can do', async t => {
  // The others wait (bounded) until the broken one has tried, so it surely gets a tile.
  let tried!: () => void
  const brokenTried = new Promise<void>(resolve => { tried = resolve })
  const healthy = slowProcessor(1)
  const waitForBroken: TileProcessor = async (pixels, tile, work, gate) => {
    await Promise.race([brokenTried, new Promise((_resolve, reject) => setTimeout(() => { reject(new Error('the broken peer never got a tile')) }, 10_000))])
    return await healthy(pixels, tile, work, gate)
  }
  await withCluster(2, { process: waitForBroken, keepLogs: true }, async (cluster, dir) => {
    const broken = await cluster.addPeer({ process: async () => { tried(); throw new Error('out of luck here') } })
    await cluster.waitForMesh()
    const run = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 160, 120), 'blur:2,equalize', dir, 32)
    t.true(run.swarm.equals(run.local))
    t.false(Object.keys(run.done.tilesByPeer).includes(broken.peerId))
    t.true(cluster.logs.get(cluster.peers[0]!)!.some(line => line.includes(`${broken.peerId.slice(-8)} could not compute it: out of luck here`)))
  })
})
