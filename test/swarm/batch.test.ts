import test from 'ava'
import { spawn } from 'node:child_process'
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { unzipSync } from 'fflate'
import sharp from 'sharp'
import { Cluster } from '../../sim/cluster.ts'
import { submitBatch, runLocalBatch } from '../../src/client/batch.ts'
import type { BatchEvent, BatchSummary } from '../../src/client/batch-events.ts'
import { planBatch } from '../../src/client/batch-plan.ts'
import { encodeImage, parseOps, resolvePipeline } from '../../src/imaging/index.ts'
import type { BatchCoordinator } from '../../src/job/batch.ts'
import type { SwarmPeer } from '../../src/swarm/peer.ts'
import { PEER_JS } from '../helpers/cli.ts'
import { fixture } from '../helpers/fixtures.ts'
import { noiseImage } from '../helpers/images.ts'
import { tempDir } from '../helpers/swarm.ts'

const OPS = 'blur:sigma=2'
const steps = resolvePipeline(parseOps(OPS))

/** Real photos of mixed formats, noise images of several sizes in a subfolder, a corrupt and a truncated file. */
async function photoFolder (dir: string, noise = 12): Promise<string> {
  const root = join(dir, 'photos')
  await mkdir(join(root, 'more'), { recursive: true })
  for (const name of ['flowers.jpeg', 'Landscape_5.jpg', '4.webp', 'test-pattern.png', 'G31D.TIF', 'Channel_digital_image_CMYK_color.jpg', 'animated-loop-3.gif', 'corrupt-header.jpg', 'truncated.jpg']) {
    await copyFile(fixture(name), join(root, name))
  }
  for (let i = 0; i < noise; i++) {
    const image = noiseImage(160 + 37 * i, 120 + 23 * (i % 5), { channels: 3, depth: 8 }, i + 1)
    const format = i % 2 === 0 ? 'jpeg' : 'png'
    await writeFile(join(root, 'more', `noise-${i}.${format === 'jpeg' ? 'jpg' : 'png'}`), await encodeImage(image, { format }))
  }
  await writeFile(join(root, 'README.txt'), 'not an image')
  return root
}

const BAD = ['corrupt-header.jpg', 'truncated.jpg']

/** Every output the swarm wrote equals the one this process writes, file by file; the same files, no more. */
async function sameAsLocal (t: import('ava').ExecutionContext, root: string, swarmOut: string, dir: string): Promise<void> {
  const localOut = join(dir, 'local')
  const local = await runLocalBatch({ plan: await planBatch([root], localOut, { recursive: true }), steps, quality: 90, skipExisting: false }, { maxPixels: 3e8, maxUploadBytes: 1 << 30, threads: 1 })
  const files = async (d: string): Promise<string[]> => (await readdir(d, { recursive: true, withFileTypes: true })).filter(e => e.isFile()).map(e => join(e.parentPath, e.name).slice(d.length + 1)).sort()
  const expected = await files(localOut)
  t.deepEqual(await files(swarmOut), expected)
  t.is(expected.length, local.done)
  for (const f of expected) t.true((await readFile(join(swarmOut, f))).equals(await readFile(join(localOut, f))), `${f} differs from its --local output`)
}

function failedNames (summary: BatchSummary): string[] {
  return summary.failures.map(f => f.input.split('/').at(-1)!).sort()
}

function batchOn (peer: SwarmPeer, onBatch: (batch: BatchCoordinator) => void): void {
  peer.events.addEventListener('batch', evt => { onBatch((evt as CustomEvent<BatchCoordinator>).detail) })
}

test.serial('a folder of mixed photos with corrupt files, through three peers, one crashed mid-batch: every good output exact, the bad ones named', async t => {
  const cluster = await Cluster.start(3, { leaseMs: 2000 })
  try {
    const dir = await tempDir()
    const root = await photoFolder(dir, 24)
    const [coordinator, victim] = [cluster.peers[0]!, cluster.peers[1]!]
    // Struck the moment it is granted an image, once it has delivered one: it dies holding a lease.
    let struck = false
    let delivered = false
    batchOn(coordinator, batch => {
      batch.on('image', (_task, _out, by) => { if (by === victim.peerId) delivered = true })
      const claim = batch.claim.bind(batch)
      batch.claim = async peer => {
        const outcome = await claim(peer)
        if (peer === victim.peerId && delivered && outcome.kind === 'task' && !struck) {
          struck = true
          setImmediate(() => { void cluster.crash(victim) })
        }
        return outcome
      }
    })
    const events: BatchEvent[] = []
    const out = join(dir, 'swarm')
    const summary = await submitBatch({ plan: await planBatch([root], out, { recursive: true }), steps, quality: 90, skipExisting: false }, { peer: coordinator.addrs()[0]!, onBatchEvent: e => { events.push(e) } })
    t.true(struck, 'the victim was crashed while it held an image')
    t.deepEqual(failedNames(summary), BAD)
    t.is(summary.done, 31)
    const written = events.filter(e => e.event === 'image')
    t.is(new Set(written.map(e => e.input)).size, written.length, 'each image written once')
    t.true(written.some(e => e.event === 'image' && e.by === victim.peerId), 'the victim delivered before it died')
    t.true(written.some(e => e.event === 'image' && e.by === cluster.peers[2]!.peerId), 'the third peer worked too')
    const failure = events.find(e => e.event === 'image-failed' && e.input.endsWith('truncated.jpg'))
    t.regex(JSON.stringify(failure), /truncated/)
    await sameAsLocal(t, root, out, dir)
  } finally {
    await cluster.stop()
  }
})

for (const how of ['crashes', 'leaves (SIGTERM)'] as const) {
  test.serial(`a batch's coordinator that ${how} mid-batch: the images not yet back resume on another peer; every output exact, none written twice`, async t => {
    const cluster = await Cluster.start(3, { leaseMs: 2000 })
    try {
      const dir = await tempDir()
      const root = await photoFolder(dir, 24)
      const coordinator = cluster.peers[0]!
      let struck = false
      let doneBefore = 0
      batchOn(coordinator, batch => {
        batch.on('image', () => {
          if (struck || ++doneBefore < 8) return
          struck = true
          void (how === 'crashes' ? cluster.crash(coordinator) : cluster.leave(coordinator))
        })
      })
      const events: BatchEvent[] = []
      const out = join(dir, 'swarm')
      const summary = await submitBatch({ plan: await planBatch([root], out, { recursive: true }), steps, quality: 90, skipExisting: false }, { peer: coordinator.addrs()[0]!, onBatchEvent: e => { events.push(e) } })
      t.true(struck)
      const kinds = events.map(e => e.event)
      t.true(kinds.includes('lost') && kinds.includes('resumed'), kinds.join(' '))
      const resumed = events.find(e => e.event === 'resumed') as Extract<BatchEvent, { event: 'resumed' }>
      t.true(resumed.images < 33, `only the images not back resume (${resumed.images})`)
      t.deepEqual(failedNames(summary), BAD)
      t.is(summary.done, 31)
      const written = events.filter(e => e.event === 'image')
      t.is(new Set(written.map(e => e.input)).size, written.length, 'each image written once')
      await sameAsLocal(t, root, out, dir)
    } finally {
      await cluster.stop()
    }
  })
}

test.serial('the submit CLI: a batch interrupted with Ctrl-C keeps what it wrote, whole; --skip-existing does the rest; status 3 names the bad images', async t => {
  const cluster = await Cluster.start(2)
  try {
    const dir = await tempDir()
    const root = await photoFolder(dir, 24)
    const out = join(dir, 'swarm')
    const args = ['submit', '--peer', cluster.peers[0]!.addrs()[0]!, '-i', root, '-r', '-o', out, '--ops', OPS, '--json']
    const first = spawn(process.execPath, [PEER_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    const lines: string[] = []
    // 'close': exited, and its output read to the end.
    const exited = new Promise<number | null>(resolve => first.on('close', (code, signal) => { resolve(code ?? (signal !== null ? -1 : null)) }))
    // Interrupted once three images are written: an event, not a sleep; bounded.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`no third image within 60 s:\n${lines.join('\n')}`)) }, 60_000)
      let images = 0
      createInterface({ input: first.stdout }).on('line', line => {
        lines.push(line)
        if ((JSON.parse(line) as BatchEvent).event === 'image' && ++images === 3) {
          clearTimeout(timer)
          first.kill('SIGINT')
          resolve()
        }
      })
    })
    t.is(await exited, 130)
    const kept = (await readdir(out, { recursive: true })).filter(n => /\.(jpe?g|png|webp|tif|gif)$/i.test(n))
    const said = JSON.parse(lines.at(-1)!) as { event: string, written: number, message: string }
    t.like(said, { event: 'interrupted', written: kept.length })
    t.regex(said.message, /--skip-existing to do the rest/)
    t.true(kept.length >= 3 && kept.length < 31, `${kept.length} outputs kept`)
    t.deepEqual((await readdir(out, { recursive: true })).filter(n => n.includes('partial')), [], 'no partial file left')

    const second = await new Promise<{ code: number | null, stdout: string }>(resolve => {
      const child = spawn(process.execPath, [PEER_JS, ...args, '--skip-existing'], { stdio: ['ignore', 'pipe', 'inherit'] })
      let stdout = ''
      child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 120_000)
      child.on('exit', code => { clearTimeout(timer); resolve({ code, stdout }) })
    })
    const events = second.stdout.trim().split('\n').map(l => JSON.parse(l) as BatchEvent)
    t.is(second.code, 3, 'some images failed')
    t.is(events.filter(e => e.event === 'image-skipped').length, kept.length)
    const end = events.at(-1) as Extract<BatchEvent, { event: 'batch-done' }>
    t.like(end, { event: 'batch-done', skipped: kept.length, done: 31 - kept.length, failed: 2 })
    t.deepEqual(end.failures.map(f => f.input.split('/').at(-1)).sort(), BAD)
    await sameAsLocal(t, root, out, dir)
  } finally {
    await cluster.stop()
  }
})

test.serial('images over --tile-above-mp are tiled across the swarm, one job each, in the same batch; a .zip holds every output', async t => {
  const cluster = await Cluster.start(2)
  try {
    const dir = await tempDir()
    const root = join(dir, 'mixed')
    await mkdir(root)
    await copyFile(fixture('Landscape_5.jpg'), join(root, 'Landscape_5.jpg'))
    await writeFile(join(root, 'big.png'), await encodeImage(noiseImage(700, 500, { channels: 3, depth: 8 }, 9), { format: 'png' }))
    await writeFile(join(root, 'small.png'), await encodeImage(noiseImage(90, 60, { channels: 3, depth: 8 }, 3), { format: 'png' }))
    const events: BatchEvent[] = []
    const zip = join(dir, 'out.zip')
    const summary = await submitBatch({ plan: await planBatch([root], zip, { recursive: false }), steps, quality: 90, skipExisting: false }, { peer: cluster.peers[0]!.addrs()[0]!, tileSize: 128, tileAboveMp: 0.3, onBatchEvent: e => { events.push(e) } })
    t.like(events.find(e => e.event === 'batch'), { images: 3, whole: 2, tiled: 1 })
    t.true(events.some(e => e.event === 'tiles' && e.input.endsWith('big.png')), 'the big image went in tiles')
    t.is(summary.done, 3)
    const files = unzipSync(await readFile(zip))
    const localOut = join(dir, 'local')
    await runLocalBatch({ plan: await planBatch([root], localOut, { recursive: false }), steps, quality: 90, skipExisting: false }, { maxPixels: 3e8, maxUploadBytes: 1 << 30, threads: 1 })
    t.deepEqual(Object.keys(files).sort(), ['Landscape_5.jpg', 'big.png', 'small.png'])
    for (const [name, data] of Object.entries(files)) t.true(Buffer.from(data).equals(await readFile(join(localOut, name))), name)
  } finally {
    await cluster.stop()
  }
})

test.serial('a worker sends an output it kept instead of computing it again: the same batch submitted elsewhere', async t => {
  const cluster = await Cluster.start(2)
  try {
    const dir = await tempDir()
    const root = await photoFolder(dir, 4)
    const [a, b] = [cluster.peers[0]!, cluster.peers[1]!]
    // B coordinates; its own worker holds back until A has delivered three images, so A surely does some.
    let byA = 0
    const aDelivered = Promise.withResolvers<void>()
    batchOn(b, batch => {
      batch.on('image', (_task, _out, by) => { if (by === a.peerId && ++byA === 3) aDelivered.resolve() })
      const claim = batch.claim.bind(batch)
      batch.claim = async peer => {
        if (peer === b.peerId) await aDelivered.promise
        return await claim(peer)
      }
    })
    const first: BatchEvent[] = []
    const request = async (out: string): Promise<Parameters<typeof submitBatch>[0]> => ({ plan: await planBatch([root], out, { recursive: true }), steps, quality: 90, skipExisting: false })
    await submitBatch(await request(join(dir, 'first')), { peer: b.addrs()[0]!, onBatchEvent: e => { first.push(e) } })
    const doneByA = first.filter(e => e.event === 'image' && e.by === a.peerId).map(e => e.event === 'image' ? e.input : '').sort()
    t.true(doneByA.length >= 3)
    await cluster.leave(b)
    const again: BatchEvent[] = []
    const out = join(dir, 'again')
    const summary = await submitBatch(await request(out), { peer: a.addrs()[0]!, onBatchEvent: e => { again.push(e) } })
    t.is(summary.done, 11)
    const recovered = again.filter(e => e.event === 'image' && e.recovered).map(e => e.event === 'image' ? e.input : '').sort()
    // A keeps what it computed, delivered or not: a copy of a straggler's image whose first copy won counts too (seen under load).
    t.true(doneByA.every(input => recovered.includes(input)), `every image A delivered before comes back kept: ${JSON.stringify({ doneByA, recovered })}`)
    t.true(recovered.length < 11, 'images A never computed are computed')
    await sameAsLocal(t, root, out, dir)
  } finally {
    await cluster.stop()
  }
})

test.serial('a peer\'s limits in a batch: an image its pipeline would make too large, and one over the upload limit, fail alone and say which limit', async t => {
  const cluster = await Cluster.start(1, { maxPixels: 2_000_000, maxUploadBytes: 100_000 })
  try {
    const dir = await tempDir()
    const root = join(dir, 'limits')
    await mkdir(root)
    await copyFile(fixture('Landscape_5.jpg'), join(root, 'big-file.jpg'))
    await copyFile(fixture('low-contrast.jpg'), join(root, 'small.jpg'))
    // Flat: a small file, so only its pixels are over a limit.
    await writeFile(join(root, 'grows.png'), await sharp({ create: { width: 800, height: 700, channels: 3, background: '#336699' } }).png().toBuffer())
    const out = join(dir, 'out')
    const grow = resolvePipeline(parseOps('resize:scale=3'))
    const summary = await submitBatch({ plan: await planBatch([root], out, { recursive: false }), steps: grow, quality: 90, skipExisting: false }, { peer: cluster.peers[0]!.addrs()[0]!, tileAboveMp: 40 })
    t.is(summary.done, 1)
    const why = Object.fromEntries(summary.failures.map(f => [f.input.split('/').at(-1), f.message]))
    t.regex(why['grows.png']!, /would make an image of 5\.0 MP .*--max-pixels/)
    t.regex(why['big-file.jpg']!, /over the upload limit of 100000 bytes \(--max-upload-bytes, the coordinating peer's\)/)
    t.deepEqual(await readdir(out), ['small.jpg'])
  } finally {
    await cluster.stop()
  }
})

test.serial('a batch resumed after its coordinator crashed gets back from a worker the output it computed and could not deliver, not computed again', async t => {
  const cluster = await Cluster.start(3, { leaseMs: 2000 })
  try {
    const dir = await tempDir()
    const root = await photoFolder(dir, 8)
    const [b, a] = [cluster.peers[0]!, cluster.peers[1]!]
    const plan = await planBatch([root], join(dir, 'out'), { recursive: true })
    // B's own worker waits, so the others work; A's third output is never taken: B crashes as it arrives.
    let lostInput: string | undefined
    batchOn(b, batch => {
      const never = new Promise<never>(() => {})
      const claim = batch.claim.bind(batch)
      batch.claim = async peer => peer === b.peerId ? await never : await claim(peer)
      const slots = new Map<number, number>()
      const tasks = batch.claim
      batch.claim = async peer => {
        const outcome = await tasks(peer)
        if (outcome.kind === 'task') slots.set(outcome.lease.tile, outcome.task.index)
        return outcome
      }
      let fromA = 0
      const result = batch.result.bind(batch)
      batch.result = (peer, slot, ...rest) => {
        if (peer === a.peerId && ++fromA === 3 && lostInput === undefined) {
          lostInput = plan.items[slots.get(slot)!]!.input
          void cluster.crash(b)
          return { status: 'duplicate' }
        }
        return result(peer, slot, ...rest)
      }
    })
    const events: BatchEvent[] = []
    const summary = await submitBatch({ plan, steps, quality: 90, skipExisting: false }, { peer: b.addrs()[0]!, onBatchEvent: e => { events.push(e) } })
    t.truthy(lostInput)
    t.true(events.some(e => e.event === 'resumed'))
    const back = events.find(e => e.event === 'image' && e.input === lostInput) as Extract<BatchEvent, { event: 'image' }>
    t.like(back, { recovered: true, by: a.peerId }, 'the holder sent what it kept')
    t.is(summary.done, 15)
    await sameAsLocal(t, root, join(dir, 'out'), dir)
  } finally {
    await cluster.stop()
  }
})
