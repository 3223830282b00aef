/**
 * npm run demo: three peers as three processes on this machine, a sample photo
 * through edge detection (Canny: two phases), then a folder of photos as one
 * batch, and what each peer did; then the swarm as one peer sees it.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { REPO, runPeerJs, startPeerProcess, type PeerProcess } from './processes.ts'

const SAMPLE = resolve(REPO, 'sim/samples/saw.jpg')
const OUT_DIR = resolve(REPO, 'out')
const OUTPUT = join(OUT_DIR, 'demo-edges.png')
const REFERENCE = join(OUT_DIR, 'demo-edges-local.png')
const TASK = 'edge_detection'
const PHOTOS = resolve(REPO, 'sim/samples/photos')
const BATCH_OUT = join(OUT_DIR, 'demo-batch')
const BATCH_REFERENCE = join(OUT_DIR, 'demo-batch-local')
/** Heavy enough (about 0.3 s a photo here) that the other peers join in before the coordinator's own worker is through the folder. */
const BATCH_OPS = 'median:size=5'

async function run (args: string[], timeoutMs: number): Promise<string> {
  const { code, stdout, stderr } = await runPeerJs(args, { timeoutMs })
  if (code !== 0) throw new Error(`${args[0]} failed: ${stderr.trim()}`)
  return stdout
}

const dataRoot = await mkdtemp(join(tmpdir(), 'tileswarm-demo-'))
const peers: PeerProcess[] = []
try {
  await mkdir(OUT_DIR, { recursive: true })
  console.log('starting 3 peers on 127.0.0.1 (one slot each)...')
  // Three peers on one machine share its cores: spreading a 6 MP job among them rarely pays, and --spread auto
  // would run it as one pipeline. The demo shows the swarm's tiles, so its peers tile every job.
  const common = ['--listen', '/ip4/127.0.0.1/tcp/0', '--slots', '1', '--tile-size', '256', '--spread', 'always']
  peers.push(await startPeerProcess('peer-1', [...common, '--data-dir', join(dataRoot, 'peer-1')]))
  for (const name of ['peer-2', 'peer-3']) {
    peers.push(await startPeerProcess(name, [...common, '--data-dir', join(dataRoot, name), '--bootstrap', peers[0]!.addr]))
  }
  // Bounded waits on what the peers print, not sleeps.
  await Promise.all(peers.slice(1).map(async p => await p.waitFor(/peer joined/, 15_000)))
  for (const p of peers) console.log(`  ${p.name}: ${p.addr}`)

  console.log(`submitting ${relative(process.cwd(), SAMPLE)} to peer-1 with --task ${TASK}...`)
  const started = performance.now()
  const stdout = await run(['submit', '--peer', peers[0]!.addr, '--task', TASK, '--image_path', SAMPLE, '--out', OUTPUT, '--json'], 120_000)
  const seconds = (performance.now() - started) / 1000
  const events = stdout.trim().split('\n').map(line => JSON.parse(line) as Record<string, any>)
  const accepted = events.find(e => e.event === 'accepted')!
  const done = events.find(e => e.event === 'done')!
  const names = new Map(peers.map(p => [p.peerId, p.name]))

  await run(['submit', '--local', '--task', TASK, '--image_path', SAMPLE, '--out', REFERENCE], 120_000)
  const identical = (await readFile(OUTPUT)).equals(await readFile(REFERENCE))

  console.log('')
  console.log(`result:    ${relative(process.cwd(), OUTPUT)} (${done.width}x${done.height}, ${done.bytes} bytes)`)
  console.log(`took:      ${seconds.toFixed(2)} s end to end (${accepted.tiles} tiles of ${accepted.tileSize} px, halo ${accepted.halo})`)
  for (const note of accepted.notes as string[]) console.log(`           ${note}`)
  console.log('tiles by peer (every phase):')
  for (const [id, n] of Object.entries(done.tilesByPeer as Record<string, number>)) {
    console.log(`  ${(names.get(id) ?? id).padEnd(7)} ${String(n).padStart(4)}  ${id}`)
  }
  console.log(`leases:    ${done.leases.granted} granted, ${done.leases.expired} expired, ${done.leases.released} handed back`)
  console.log(`identical to one process (submit --local): ${identical ? 'yes, byte for byte' : 'NO'}`)
  if (!identical) process.exitCode = 1

  console.log('')
  console.log(`submitting the folder ${relative(process.cwd(), PHOTOS)} to peer-1 as one batch with --ops ${BATCH_OPS}...`)
  await rm(BATCH_OUT, { recursive: true, force: true })
  await rm(BATCH_REFERENCE, { recursive: true, force: true })
  const batchStarted = performance.now()
  const batchEvents = (await run(['submit', '--peer', peers[0]!.addr, '--ops', BATCH_OPS, '-i', PHOTOS, '-o', BATCH_OUT, '--json'], 120_000)).trim().split('\n').map(line => JSON.parse(line) as Record<string, any>)
  const batchSeconds = (performance.now() - batchStarted) / 1000
  await run(['submit', '--local', '--ops', BATCH_OPS, '-i', PHOTOS, '-o', BATCH_REFERENCE], 120_000)
  const images = batchEvents.filter(e => e.event === 'image')
  const byPeer = new Map<string, number>()
  let batchIdentical = images.length > 0
  for (const image of images) {
    byPeer.set(image.by, (byPeer.get(image.by) ?? 0) + 1)
    const reference = join(BATCH_REFERENCE, relative(BATCH_OUT, image.output as string))
    if (!(await readFile(image.output as string)).equals(await readFile(reference))) batchIdentical = false
    console.log(`  ${relative(process.cwd(), image.input as string).padEnd(40)} -> ${relative(process.cwd(), image.output as string)} (${image.width}x${image.height}) by ${names.get(image.by) ?? image.by}`)
  }
  const end = batchEvents.at(-1)!
  console.log(`batch:     ${end.done} done, ${end.failed} failed in ${batchSeconds.toFixed(2)} s end to end, on one connection as one job`)
  console.log(`images by peer: ${[...byPeer].map(([id, n]) => `${names.get(id) ?? id} ${n}`).join(', ')}`)
  console.log(`identical to one process (submit --local): ${batchIdentical ? 'yes, every image byte for byte' : 'NO'}`)
  if (!batchIdentical || end.failed !== 0) process.exitCode = 1

  console.log('')
  console.log('the swarm as peer-1 sees it (tileswarm status --peer <its address>):')
  console.log((await run(['status', '--peer', peers[0]!.addr], 30_000)).trimEnd().split('\n').map(l => `  ${l}`).join('\n'))
  console.log('')
  console.log('each peer also serves a web page, a live dashboard and /metrics: run one with `npx tileswarm` (or the installed tileswarm) and open http://127.0.0.1:8080/')
} finally {
  await Promise.all(peers.map(async p => await p.stop()))
  await rm(dataRoot, { recursive: true, force: true })
}
