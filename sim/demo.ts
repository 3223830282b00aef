/**
 * npm run demo: three peers as three processes on this machine, a sample photo
 * through edge detection (Canny: two phases), and what each peer did.
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
  const common = ['--listen', '/ip4/127.0.0.1/tcp/0', '--slots', '1', '--tile-size', '256']
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
} finally {
  await Promise.all(peers.map(async p => await p.stop()))
  await rm(dataRoot, { recursive: true, force: true })
}
