import test from 'ava'
import { until } from '../../sim/cluster.ts'
import type { JobCoordinator } from '../../src/job/coordinator.ts'
import { noisePng, slowProcessor, strikeMidJob, swarmVersusLocal, trackPlacements, withCluster, withWatchedCluster } from '../helpers/swarm.ts'
import { fixture } from '../helpers/fixtures.ts'
import { processTile } from '../../src/imaging/index.ts'
import type { TileProcessor } from '../../src/worker/tile-lane.ts'
import type { SwarmPeer } from '../../src/swarm/peer.ts'
import { decodeInput } from '../../src/job/inputs.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { runLocal } from '../../src/client/local.ts'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

// Each test starts its own cluster on loopback; they run one at a time to keep the 2 cores honest.
const serial = test.serial

function everyTileOnce (t: any, counts: Map<number, number>, tiles: number): void {
  t.is(counts.size, tiles, 'every tile placed')
  t.true([...counts.values()].every(n => n === 1), 'no tile placed twice')
}

for (const n of [1, 3, 5]) {
  serial(`${n} peer(s): a one-tile image and a ~2000-tile image come back exact`, async t => {
    await withCluster(n, async (cluster, dir) => {
      const counts = trackPlacements(cluster.peers[0]!)
      const tiny = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 7, 5), 'blur:2,sobel', dir, 64, 'tiny')
      t.true(tiny.swarm.equals(tiny.local))
      const big = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 1500, 1300, { channels: 4, depth: 8 }), 'median:3,invert', dir, 32, 'big')
      t.true(big.swarm.equals(big.local))
      t.is(Object.values(big.done.tilesByPeer).reduce((a, b) => a + b, 0), 47 * 41)
      if (n > 1) t.true(Object.keys(big.done.tilesByPeer).length > 1, `work spread: ${JSON.stringify(big.done.tilesByPeer)}`)
      t.is(counts.size, 47 * 41)
    })
  })
}

serial('a worker crashed mid-job (connections cut, no goodbye): its tiles are reclaimed, output exact', async t => {
  // The others wait until the victim is struck: it surely has tiles placed and leases in hand.
  await withWatchedCluster(3, 2, { leaseMs: 3000, process: slowProcessor(5) }, async (cluster, dir, go) => {
    const victim = cluster.peers[2]!
    const { counts, struck } = strikeMidJob(cluster.peers[0]!, victim, () => { void cluster.crash(victim); go() })
    const run = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 400, 300), 'blur:3,sobel', dir, 32)
    t.true(struck(), 'the victim crashed mid-job')
    t.true(run.swarm.equals(run.local))
    t.true(run.done.leases.released + run.done.leases.expired >= 1, JSON.stringify(run.done.leases))
    everyTileOnce(t, counts, 13 * 10)
  })
})

serial('a worker that hangs (holds leases, answers nothing): the leases expire, output exact', async t => {
  await withWatchedCluster(3, 1, { leaseMs: 400, process: slowProcessor(5) }, async (cluster, dir, go) => {
    const victim = cluster.peers[1]!
    const { counts, struck } = strikeMidJob(cluster.peers[0]!, victim, () => { cluster.hang(victim); go() })
    const run = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 320, 320), 'median:5', dir, 32)
    t.true(struck())
    t.true(run.swarm.equals(run.local))
    // Its tiles were done by others: copied once they straggled, or taken back when their leases ran out.
    t.true(run.done.leases.expired + run.done.leases.speculated >= 1, JSON.stringify(run.done.leases))
    everyTileOnce(t, counts, 100)
  })
})

serial('a peer stopping gracefully hands its leases back at once (no wait for the 60 s lease)', async t => {
  await withWatchedCluster(3, 2, { leaseMs: 60_000, process: slowProcessor(5) }, async (cluster, dir, go) => {
    const leaving = cluster.peers[2]!
    const { counts, struck } = strikeMidJob(cluster.peers[0]!, leaving, () => { void leaving.stop(); go() })
    const run = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 300, 300), 'sharpen:2', dir, 32)
    t.true(struck())
    t.true(run.swarm.equals(run.local))
    t.is(run.done.leases.expired, 0, 'nothing waited for a lease to run out')
    t.true(run.done.leases.released >= 1, JSON.stringify(run.done.leases))
    everyTileOnce(t, counts, 100)
  })
})

serial('a peer joining mid-job gets tiles', async t => {
  // The first peers hold back once a tile is in, until the newcomer has placed one: the job cannot end first.
  let newcomer: SwarmPeer | undefined
  let joined: Promise<SwarmPeer> | undefined
  let newcomerPlaced!: () => void
  const placedByNewcomer = new Promise<void>(resolve => { newcomerPlaced = resolve })
  const holdingBack: TileProcessor = async (pixels, tile, steps) => {
    if (joined !== undefined) {
      await Promise.race([placedByNewcomer, new Promise((_resolve, reject) => setTimeout(() => { reject(new Error('the newcomer placed no tile within 20 s')) }, 20_000).unref())])
    }
    return await processTile(pixels, tile, steps)
  }
  await withCluster(2, { process: holdingBack }, async (cluster, dir) => {
    trackPlacements(cluster.peers[0]!, (_tile, by) => {
      joined ??= cluster.addPeer({ process: async (pixels, tile, steps) => await processTile(pixels, tile, steps) }).then(p => { newcomer = p; return p })
      if (newcomer !== undefined && by === newcomer.peerId) newcomerPlaced()
    })
    const run = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 480, 480), 'box_blur:5', dir, 32)
    await joined
    t.true(run.swarm.equals(run.local))
    t.true((run.done.tilesByPeer[newcomer!.peerId] ?? 0) > 0, JSON.stringify(run.done.tilesByPeer))
  })
})

serial('two jobs at once on two coordinators', async t => {
  await withCluster(3, async (cluster, dir) => {
    const [a, b] = await Promise.all([
      swarmVersusLocal(cluster.peers[0]!, fixture('2569067123_aca715a2ee_o.jpg'), 'edge_detection', dir, 256, 'a'),
      swarmVersusLocal(cluster.peers[1]!, fixture('test-pattern.png'), 'blur:2,sepia', dir, 128, 'b'),
    ])
    t.true(a.swarm.equals(a.local))
    t.true(b.swarm.equals(b.local))
  })
})

serial('waits on the mesh end by an event, bounded', async t => {
  await withCluster(2, async cluster => {
    await t.throwsAsync(until(() => false, [cluster.peers[0]!.node.services.pubsub], ['gossipsub:heartbeat'], 200, 'nothing'), { message: /timed out after 200 ms waiting for nothing/ })
  })
})

serial('a flaky worker (result streams dropped halfway): the tiles come back, output exact', async t => {
  // The others wait until the flaky peer has sent three results.
  await withWatchedCluster(3, 1, { leaseMs: 2000, process: slowProcessor(5) }, async (cluster, dir, go) => {
    // Its first three results are dropped halfway; then it behaves.
    let asked = 0
    cluster.seed(() => {
      if (asked === 2) go()
      return asked++ < 3 ? 0 : 1
    })
    cluster.flaky(cluster.peers[1]!, 0.5)
    const counts = trackPlacements(cluster.peers[0]!)
    const run = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 320, 320), 'blur:2', dir, 32)
    t.true(asked >= 3, 'the flaky peer sent results')
    t.true(run.swarm.equals(run.local))
    t.true(run.done.leases.released >= 1, `a dropped stream hands its tiles back: ${JSON.stringify(run.done.leases)}`)
    everyTileOnce(t, counts, 100)
  })
})

serial('a worker cut off from the coordinator for a while, then back: output exact', async t => {
  // The others wait until the peer to be cut off has placed a tile.
  await withWatchedCluster(3, 2, { leaseMs: 500, process: slowProcessor(5) }, async (cluster, dir, go) => {
    let cut: Promise<void> | undefined
    const counts = trackPlacements(cluster.peers[0]!, (_tile, by) => {
      if (by === cluster.peers[2]!.peerId && cut === undefined) {
        cut = cluster.partition(cluster.peers[2]!, cluster.peers[0]!, 1000)
        go()
      }
    })
    const run = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 320, 320), 'sobel', dir, 32)
    await cut
    t.true(cut !== undefined)
    t.true(run.swarm.equals(run.local))
    everyTileOnce(t, counts, 100)
  })
})

serial('tiles that take longer than the lease are renewed, not taken away', async t => {
  await withCluster(2, { leaseMs: 500, process: slowProcessor(1200) }, async (cluster, dir) => {
    let job: JobCoordinator | undefined
    cluster.peers[0]!.events.addEventListener('job', e => { job = (e as CustomEvent<JobCoordinator>).detail })
    const run = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 96, 64), 'invert', dir, 32)
    t.true(run.swarm.equals(run.local))
    t.is(run.done.leases.expired, 0, JSON.stringify(run.done.leases))
    t.true(job!.leases.stats.renewed > 0, JSON.stringify(job!.leases.stats))
  })
})

serial('one slot: two tiles in hand, one pass let through at a time', async t => {
  let inHand = 0
  let computing = 0
  const most = { inHand: 0, computing: 0 }
  const process: TileProcessor = async (pixels, tile, steps, gate) => {
    most.inHand = Math.max(most.inHand, ++inHand)
    try {
      return await gate(async () => {
        most.computing = Math.max(most.computing, ++computing)
        // Modelled compute: long enough for the other lane's grant to arrive meanwhile.
        const [out] = await Promise.all([processTile(pixels, tile, steps), new Promise(resolve => setTimeout(resolve, 3))])
        computing--
        return out
      })
    } finally {
      inHand--
    }
  }
  await withCluster(1, { slots: 1, process }, async (cluster, dir) => {
    const run = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 300, 200), 'box_blur:size=3', dir, 32, 'slots')
    t.true(run.swarm.equals(run.local))
  })
  // The pool's other thread is for the passes of the jobs the peer coordinates.
  t.is(most.computing, 1)
  t.is(most.inHand, 2)
})

serial('--spread auto: a job runs as one pipeline unless spreading pays (a lone peer, a light job); a heavy one goes as its estimates say; every output exact', async t => {
  // An address of its own: a peer of another test file, dialing an old peer's port on 127.0.0.1, would join it for a moment.
  const lines: string[] = []
  await withCluster(1, { slots: 1, spread: 'auto', listen: ['/ip4/127.77.41.9/tcp/0'], log: line => { lines.push(line) } }, async (cluster, dir) => {
    const input = await noisePng(dir, 300, 200)
    const lone = await swarmVersusLocal(cluster.peers[0]!, input, 'median:size=5', dir, 32, 'lone', 'jpg')
    t.true(lone.swarm.equals(lone.local))
    t.deepEqual(lone.done.tilesByPeer, { [cluster.peers[0]!.peerId]: 70 }, 'the job\'s own tiles, done by the one pipeline')
    t.is(lone.done.leases.granted, 0, 'no tiles, no leases')
    t.true(lines.some(l => /one pipeline here: no other peer to share it with/.test(l)), lines.join('\n'))
    // A pipeline no single libvips pipeline runs exactly goes as --local runs it.
    const sobel = await swarmVersusLocal(cluster.peers[0]!, input, 'sobel,invert', dir, 32, 'sobel', 'png')
    t.true(sobel.swarm.equals(sobel.local))
    t.is(sobel.done.leases.granted, 0)
    await cluster.addPeer({ spread: 'auto' })
    await cluster.waitForMesh()
    // Light work on a small image: the peer's cost model says spreading would not pay.
    const light = await swarmVersusLocal(cluster.peers[0]!, input, 'invert', dir, 32, 'light', 'jpg')
    t.true(light.swarm.equals(light.local))
    t.is(light.done.leases.granted, 0)
    t.true(lines.some(l => /one pipeline here: spreading would not pay \(.* s on 2 slots against .* s as one pipeline\)/.test(l)), lines.join('\n'))
    // Heavy work: tiled over both peers exactly when the estimates say so (on one machine's shared cores,
    // with a new peer's results checked, they may not: spread.test.ts holds the decision itself).
    const seen = lines.length
    const heavy = await swarmVersusLocal(cluster.peers[0]!, await noisePng(dir, 900, 600), 'median:size=15', dir, undefined, 'heavy', 'jpg')
    t.true(heavy.swarm.equals(heavy.local))
    const said = lines.slice(seen).map(l => /(spread|spreading would not pay \(|one pipeline here: ).*?([\d.]+) s on 2 slots against ([\d.]+) s as one pipeline/.exec(l)).find(m => m !== null)
    t.truthy(said, lines.join('\n'))
    const tiled = Number(said![2]) <= 0.9 * Number(said![3])
    t.is(heavy.done.leases.granted > 0, tiled, said![0])
    if (tiled) t.is(Object.keys(heavy.done.tilesByPeer).length, 2, JSON.stringify(heavy.done.tilesByPeer))
  })
})

serial('the input is decoded once in the whole swarm, on its coordinator: workers get their tiles\' pixels with their grants', async t => {
  let decodes = 0
  await withCluster(4, { process: slowProcessor(10), decodeInput: async (file, shape, maxPixels) => { decodes++; return await decodeInput(file, shape, maxPixels) } }, async (cluster, dir) => {
    const coordinator = cluster.peers[0]!
    const run = await swarmVersusLocal(coordinator, await noisePng(dir, 480, 320), 'box_blur:3', dir, 32)
    t.true(run.swarm.equals(run.local))
    t.true(Object.keys(run.done.tilesByPeer).length >= 3, JSON.stringify(run.done.tilesByPeer))
    t.is(decodes, 1)
    // A geometry step runs once too, on the coordinator: workers cut nothing from a whole image.
    const rotated = await swarmVersusLocal(coordinator, await noisePng(dir, 200, 120), 'rotate:90,sobel', dir, 32, 'rotated')
    t.true(rotated.swarm.equals(rotated.local))
    t.is(decodes, 2)
  })
})

serial('pixels damaged on their way to a worker are refused there (their checksum): the tile goes to another, output exact', async t => {
  await withCluster(3, { process: slowProcessor(10) }, async (cluster, dir) => {
    const coordinator = cluster.peers[0]!
    cluster.faults.get(coordinator)!.corruptsGrants = true
    const run = await swarmVersusLocal(coordinator, await noisePng(dir, 320, 200), 'box_blur:3', dir, 32)
    t.true(run.swarm.equals(run.local))
    t.deepEqual(Object.keys(run.done.tilesByPeer), [coordinator.peerId], 'no damaged grant was computed')
  })
})

serial('--input-memory-mb bounds the decoded inputs a coordinator holds: a job past it is refused and the client goes on to another peer', async t => {
  // 480x320 RGB decodes to 460,800 bytes.
  await withCluster(1, { process: slowProcessor(5) }, async (cluster, dir) => {
    const roomy = cluster.peers[0]!
    const small = await cluster.addPeer({ inputMemoryBytes: 400_000 })
    await cluster.waitForMesh()
    const input = await noisePng(dir, 480, 320)
    const passed: string[] = []
    const out = join(dir, 'out.png')
    const done = await submitToSwarm(requestFromFlags({ ops: 'box_blur:3', imagePath: input, out }), { peer: [small.addrs()[0]!, roomy.addrs()[0]!], tileSize: 32, onEvent: e => { if (e.event === 'passed') passed.push(e.reason) } })
    t.true(Object.keys(done.tilesByPeer).length >= 1)
    t.true(passed.some(r => /its input decodes to 450 kB, over this peer's --input-memory-mb of 391 kB/.test(r)), passed.join('\n'))
    const local = join(dir, 'local.png')
    await runLocal(requestFromFlags({ ops: 'box_blur:3', imagePath: input, out: local }))
    t.true((await readFile(out)).equals(await readFile(local)))
  })
})
