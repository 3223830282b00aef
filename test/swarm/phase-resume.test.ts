import test from 'ava'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster } from '../../sim/cluster.ts'
import { runLocal } from '../../src/client/local.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm, type SubmitEvent } from '../../src/client/submit.ts'
import type { JobCoordinator } from '../../src/job/coordinator.ts'
import { noisePng, slowProcessor, tempDir } from '../helpers/swarm.ts'

test.serial('a job in phases whose coordinator crashes in its last phase resumes there: the finished phases and tiles are collected, not computed again; output exact', async t => {
  const cluster = await Cluster.start(3, { process: slowProcessor(4), leaseMs: 2000 })
  try {
    const coordinator = cluster.peers[0]!
    // Tiles each phase had from the other peers when the coordinator was struck.
    const byOthers: number[] = []
    let struck = false
    coordinator.events.addEventListener('job', evt => {
      const job = (evt as CustomEvent<JobCoordinator>).detail
      job.on('placed', (_tile, by) => {
        if (struck) return
        if (by !== coordinator.peerId) byOthers[job.phase] = (byOthers[job.phase] ?? 0) + 1
        if (job.phase === job.plan.phases.length - 1 && job.phaseDone >= job.tiles.length / 2) {
          struck = true
          void cluster.crash(coordinator)
        }
      })
    })
    const dir = await tempDir()
    const input = await noisePng(dir, 640, 480)
    const events: SubmitEvent[] = []
    const done = await submitToSwarm(requestFromFlags({ ops: 'canny', imagePath: input, out: join(dir, 'swarm.png') }), { peer: coordinator.addrs()[0]!, tileSize: 32, onEvent: e => { events.push(e) } })
    await runLocal(requestFromFlags({ ops: 'canny', imagePath: input, out: join(dir, 'local.png') }))
    t.true((await readFile(join(dir, 'swarm.png'))).equals(await readFile(join(dir, 'local.png'))), 'exact')
    t.true(struck)
    const recovered = events.filter(e => e.event === 'recovered') as Array<Extract<SubmitEvent, { event: 'recovered' }>>
    t.deepEqual(recovered.map(r => [r.phase, r.phases, r.total]), [[0, 2, 300], [1, 2, 300]], events.map(e => e.event).join(' '))
    // Every tile of every phase the surviving peers had finished is collected, not computed again; of a summary phase,
    // those the lost coordinator's own worker made too (it gave them to other workers to keep as the phase ended).
    for (const r of recovered) t.true(r.tiles >= (byOthers[r.phase!] ?? 0), `phase ${r.phase}: recovered ${r.tiles}, finished by others ${byOthers[r.phase!]}`)
    t.is(recovered[0]!.tiles, 300, 'every summary of phase 1')
    const recoveredAll = recovered.reduce((n, r) => n + r.tiles, 0)
    t.is(done.leases.recovered, recoveredAll)
    t.is(done.leases.granted - (done.verify?.extra ?? 0) - done.leases.speculated, 600 - recoveredAll, `each tile of each phase computed or collected once, spot checks and copies of stragglers aside: ${JSON.stringify(done.leases)} ${JSON.stringify(done.verify)}`)
    t.log(`recovered ${recovered.map(r => `${r.tiles} of phase ${r.phase! + 1}`).join(', ')} (finished by the survivors before: ${byOthers.join(', ')}); the resumed job computed ${done.leases.granted} of 600`)
  } finally {
    await cluster.stop()
  }
})
