import test from 'ava'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { REPO, runPeerJs as runCli, startPeerProcess } from '../../sim/processes.ts'
import { noisePng, tempDir } from '../helpers/swarm.ts'

const FAULTY_PEER = resolve(REPO, 'sim/faulty-peer.ts')

test.serial('three real peer processes, one a liar: the output is exact, and the client names the liar', async t => {
  const dir = await tempDir()
  // The honest peers hold their tiles until the liar has sent one back wrong: it surely takes part.
  const held = { ...process.env, TILESWARM_HOLD_TILES: '1' }
  const listen = (name: string): string[] => ['--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(dir, name), '--slots', '1']
  // Tiled however small the job: this test is about the tiles (--spread auto would run it as one pipeline).
  const first = await startPeerProcess('p1', [...listen('p1'), '--spread', 'always'], { env: held, script: FAULTY_PEER })
  const second = await startPeerProcess('p2', [...listen('p2'), '--bootstrap', first.addr], { env: held, script: FAULTY_PEER })
  const liar = await startPeerProcess('liar', [...listen('liar'), '--bootstrap', first.addr], { env: { ...process.env, TILESWARM_LIE_SHARE: '1' }, script: FAULTY_PEER })
  try {
    await first.waitFor(new RegExp(`peer joined ${liar.peerId.slice(-8)}`), 20_000)
    await first.waitFor(new RegExp(`peer joined ${second.peerId.slice(-8)}`), 20_000)
    const input = await noisePng(dir, 512, 384, { channels: 3, depth: 8 }, 23)
    const out = join(dir, 'out.png')
    const submitting = runCli(['submit', '--peer', first.addr, '--ops', 'median:size=3', '-i', input, '-o', out, '--tile-size', '64'], { timeoutMs: 60_000 })
    await liar.waitFor(/^lying peer: tile \d+ of phase 1 goes back wrong/, 30_000)
    first.child.kill('SIGUSR2')
    second.child.kill('SIGUSR2')
    const submitted = await submitting
    t.is(submitted.code, 0, submitted.stderr)
    const local = await runCli(['submit', '--local', '--ops', 'median:size=3', '-i', input, '-o', join(dir, 'local.png')])
    t.is(local.code, 0, local.stderr)
    t.true((await readFile(out)).equals(await readFile(join(dir, 'local.png'))), 'output exact')
    t.regex(submitted.stdout, new RegExp(`verified \\d+ tiles by a second computation .*; excluded ${liar.peerId} \\(\\d+ wrong\\)`))
    t.regex(submitted.stderr, new RegExp(`excluded peer ${liar.peerId}: its result lost a vote`))
    await first.waitFor(new RegExp(`excluded peer ${liar.peerId}`), 5000)
  } finally {
    await Promise.all([first.stop(), second.stop(), liar.stop()])
  }
})
