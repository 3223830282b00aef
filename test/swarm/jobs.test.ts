import test from 'ava'
import { access, mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Cluster } from '../../sim/cluster.ts'
import { cancelJob, listJobs, watchJob, type JobsConnection } from '../../src/client/jobs.ts'
import { formatJobs } from '../../src/client/jobs-format.ts'
import { submitBatch } from '../../src/client/batch.ts'
import { planBatch } from '../../src/client/batch-plan.ts'
import { parseOps, processFile, resolvePipeline } from '../../src/imaging/index.ts'
import type { ImageProcessor } from '../../src/worker/batch-lane.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import type { WatchEvent } from '../../src/client/progress.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import { systemClock } from '../../src/common/clock.ts'
import { CancelRefusedError, JobCancelledError, UnknownJobError } from '../../src/common/errors.ts'
import { createClientNode } from '../../src/net/node.ts'
import type { SwarmPeer } from '../../src/swarm/peer.ts'
import { heldAfter, noisePng, tempDir } from '../helpers/swarm.ts'

const TOKEN = 'operator-token-0123456789abcdef'

/** Bounded: checks every few ms until true, or fails after `timeoutMs`; resolves with how long it took. */
async function within (check: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const started = performance.now()
  while (!check()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  return performance.now() - started
}

const held = (peers: SwarmPeer[]): number => peers.reduce((n, p) => n + p.worker.heldLeases, 0)

test.serial('jobs lists a running job with its submitter, input and operations; cancel is refused to another identity, done by the submitter (every lease freed within a second, no output) and by the operator\'s token; watch follows a job to its end', async t => {
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const cluster = await Cluster.start(3, { process: heldAfter(4, released), spread: 'always', leaseMs: 5000, operatorToken: TOKEN })
  const submitter = await createClientNode()
  const stranger = await createClientNode()
  try {
    const [coordinator, other] = cluster.peers as [SwarmPeer, SwarmPeer]
    const dir = await tempDir()
    const input = await noisePng(dir, 320, 240)
    const out = join(dir, 'out.png')
    const submitted = submitToSwarm(requestFromFlags({ ops: 'blur:2', imagePath: input, out }), { peer: coordinator.addrs()[0]!, tileSize: 32, node: submitter })
    submitted.catch(() => {})
    await within(() => held(cluster.peers) > 0 && coordinator.submissions.jobs().some(j => j.phase === 'tiles'), 20_000, 'the job under way, with leases held')
    const at = (peer: SwarmPeer, node = stranger): JobsConnection => ({ node, peer: `${peer.addrs()[0]!}` })

    // Listed by any peer: the coordinator has it in full; another peer has its coordinator's figures.
    const listed = await listJobs(at(other))
    const job = listed.jobs.find(j => j.coordinator === coordinator.peerId)
    t.truthy(job, JSON.stringify(listed.jobs))
    t.is(job!.client, submitter.peerId.toString())
    t.deepEqual(job!.ops, ['blur'])
    t.true(job!.inputBytes! > 0)
    t.is(job!.inputName, 'noise-320x240-3-8-1.png', 'the input file\'s name, without its folder')
    t.regex(formatJobs(listed), new RegExp(`${job!.jobId}\\s+tiles\\s+${submitter.peerId.toString().slice(-8)}`))

    // Another identity is refused, in one line naming who may.
    const refused = await t.throwsAsync(cancelJob(at(other), job!.jobId), { instanceOf: CancelRefusedError })
    t.regex(refused!.message, /may be cancelled only by its submitter .* or this peer's operator/)
    t.false(refused!.message.includes('\n'))
    t.true(held(cluster.peers) > 0, 'refused: the job goes on')
    // A wrong token is no token.
    await t.throwsAsync(cancelJob(at(other), job!.jobId, { token: 'not-the-operator-token-000000000' }), { instanceOf: CancelRefusedError })

    // Its submitter, asking through another peer: the coordinator cancels it.
    const watched: WatchEvent[] = []
    const watching = watchJob(at(other), job!.jobId, { clock: systemClock, onEvent: e => { watched.push(e) }, pollMs: 50 })
    watching.catch(() => {})
    await within(() => watched.length > 0, 10_000, 'watch to find the job')
    await cancelJob(at(other, submitter), job!.jobId)
    const freedMs = await within(() => held(cluster.peers) === 0, 1000, 'every lease of the cancelled job freed')
    t.log(`every lease freed ${freedMs.toFixed(0)} ms after the cancel was answered`)
    const err = await t.throwsAsync(submitted, { instanceOf: JobCancelledError })
    t.regex(err!.message, /cancelled by its submitter/)
    await t.throwsAsync(access(out), undefined, 'a cancelled job writes no output')
    await t.throwsAsync(watching, { instanceOf: JobCancelledError })
    t.is(watched[0]!.event, 'watching')
    t.like(watched.at(-1), { event: 'ended', jobId: job!.jobId, outcome: 'cancelled' })

    // Its coordinator keeps it among the last hour's, cancelled; a job ended is not cancelled twice.
    const after = await listJobs(at(coordinator))
    t.like(after.finished?.find(f => f.jobId === job!.jobId), { outcome: 'cancelled', client: submitter.peerId.toString() })
    await t.throwsAsync(cancelJob(at(coordinator, submitter), job!.jobId), { instanceOf: UnknownJobError, message: /has ended already \(cancelled\)/ })
    await t.throwsAsync(watchJob(at(coordinator), 'no-such-job', { clock: systemClock, onEvent: () => {} }), { instanceOf: UnknownJobError, message: /no job no-such-job is known/ })

    // The operator, with the token, cancels anyone's job.
    const second = submitToSwarm(requestFromFlags({ ops: 'invert', imagePath: input, out: join(dir, 'second.png') }), { peer: coordinator.addrs()[0]!, tileSize: 32, node: submitter })
    second.catch(() => {})
    // Every lane is still in a tile of the first job (held): the second waits for a lane, running all the same.
    await within(() => coordinator.submissions.jobs().some(j => j.phase === 'tiles'), 20_000, 'the second job under way')
    const secondId = coordinator.submissions.jobs()[0]!.jobId
    await cancelJob(at(other), secondId, { token: TOKEN })
    await t.throwsAsync(second, { instanceOf: JobCancelledError, message: /cancelled by the operator/ })
  } finally {
    release()
    await submitter.stop()
    await stranger.stop()
    await cluster.stop()
  }
})

test.serial('watch follows a job that ends well to its end', async t => {
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const cluster = await Cluster.start(2, { process: heldAfter(2, released), spread: 'always' })
  const client = await createClientNode()
  try {
    const [coordinator, other] = cluster.peers as [SwarmPeer, SwarmPeer]
    const dir = await tempDir()
    const input = await noisePng(dir, 128, 96)
    const submitted = submitToSwarm(requestFromFlags({ ops: 'invert', imagePath: input, out: join(dir, 'out.png') }), { peer: coordinator.addrs()[0]!, tileSize: 32, node: client })
    await within(() => coordinator.submissions.jobs().some(j => j.phase === 'tiles'), 20_000, 'the job under way')
    const jobId = coordinator.submissions.jobs()[0]!.jobId
    const events: WatchEvent[] = []
    const watching = watchJob({ node: client, peer: other.addrs()[0]! }, jobId, { clock: systemClock, onEvent: e => { events.push(e); if (e.event === 'watching') release() }, pollMs: 50 })
    const [ended] = await Promise.all([watching, submitted])
    t.is(ended.outcome, 'done')
    t.like(events.at(-1), { event: 'ended', outcome: 'done' })
    t.true(events.some(e => e.event === 'progress'))
  } finally {
    release()
    await client.stop()
    await cluster.stop()
  }
})

test.serial('a batch cancelled by its submitter: its coordinator ends it, every lease freed within a second, the client stops with one line; what was written stays', async t => {
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  // Two images go through; the rest wait until the test ends.
  let started = 0
  const processImage: ImageProcessor = async (file, steps, options) => {
    if (++started > 2) await released
    return await processFile(file, steps, options)
  }
  const cluster = await Cluster.start(2, { processImage, leaseMs: 5000 })
  const client = await createClientNode()
  try {
    const [coordinator] = cluster.peers as [SwarmPeer]
    const dir = await tempDir()
    const root = join(dir, 'in')
    await mkdir(root)
    for (let i = 0; i < 6; i++) await noisePng(root, 64, 48, { channels: 3, depth: 8 }, i + 1)
    const out = join(dir, 'out')
    const batch = submitBatch({ plan: await planBatch([root], out, { recursive: false }), steps: resolvePipeline(parseOps('invert')), quality: 90, skipExisting: false }, { peer: coordinator.addrs()[0]!, node: client })
    batch.catch(() => {})
    await within(() => held(cluster.peers) > 0 && started > 2, 20_000, 'the batch under way, leases held')
    const listed = await listJobs({ node: client, peer: coordinator.addrs()[0]! })
    const job = listed.jobs.find(j => j.kind === 'batch')!
    t.is(job.client, client.peerId.toString())
    await cancelJob({ node: client, peer: coordinator.addrs()[0]! }, job.jobId)
    await within(() => held(cluster.peers) === 0, 1000, 'every lease of the cancelled batch freed')
    await t.throwsAsync(batch, { instanceOf: JobCancelledError, message: /cancelled by its submitter/ })
    t.true((await readdir(out).catch(() => [])).length <= 2, 'no image after the cancel is written')
    t.like((await listJobs({ node: client, peer: coordinator.addrs()[0]! })).finished?.find(f => f.jobId === job.jobId), { kind: 'batch', outcome: 'cancelled' })
  } finally {
    release()
    await client.stop()
    await cluster.stop()
  }
})
