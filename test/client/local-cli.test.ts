import test, { type ExecutionContext } from 'ava'
import { execFileSync } from 'node:child_process'
import { chmod, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { runCli } from '../helpers/cli.ts'
import { fixture, fixtureNames } from '../helpers/fixtures.ts'

const BAD: Record<string, RegExp> = {
  'corrupt-header.jpg': /^tileswarm: image header is corrupt/,
  'truncated.jpg': /^tileswarm: image is truncated/,
  '65536-uint32-limit.png': /^tileswarm: image is 65536x65536 = 4295.0 MP, over the limit of 300.0 MP \(--max-pixels\)$/,
}

const tmp = async (): Promise<string> => await mkdtemp(join(tmpdir(), 'tileswarm-cli-'))

function assertOneLineError (t: ExecutionContext, stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n')
  t.is(lines.length, 1, stderr)
  t.regex(lines[0]!, pattern)
  t.notRegex(stderr, /\n\s+at /)
}

for (const name of fixtureNames()) {
  test(`local mode on fixture ${name}`, async t => {
    const dir = await tmp()
    const out = join(dir, 'out.png')
    const r = await runCli(['submit', '--local', '--task', 'edge_detection', '--image_path', fixture(name), '--out', out])
    if (BAD[name] !== undefined) {
      t.is(r.code, 1)
      assertOneLineError(t, r.stderr, BAD[name]!)
      t.deepEqual(await readdir(dir), [], 'nothing written')
      return
    }
    t.is(r.code, 0, r.stderr)
    t.regex(r.stdout, /^wrote .*out\.png \(\d+x\d+, \d+ bytes\) in [\d.]+ s\n$/)
    const meta = await sharp(out).metadata()
    const source = await sharp(fixture(name)).metadata()
    const [w, h] = (source.orientation ?? 1) >= 5 ? [source.height, source.width] : [source.width, source.height]
    t.deepEqual([meta.width, meta.height], [w, h])
    t.is(meta.channels, 1, 'edge maps are grey')
  })
}

test('pipelines from --ops, repeated --task, -i/-o and --quality', async t => {
  const dir = await tmp()
  const a = await runCli(['submit', '--local', '--ops', 'blur:sigma=2,sobel', '-i', fixture('low-contrast.jpg'), '-o', join(dir, 'a.png')])
  const b = await runCli(['submit', '--local', '--task', 'blur:sigma=2', '--task', 'sobel', '--image-path', fixture('low-contrast.jpg'), '--out', join(dir, 'b.png')])
  t.is(a.code, 0, a.stderr)
  t.is(b.code, 0, b.stderr)
  t.true((await readFile(join(dir, 'a.png'))).equals(await readFile(join(dir, 'b.png'))))
  const q = await runCli(['submit', '--local', '--op', 'sepia', '-i', fixture('flowers.jpeg'), '-o', join(dir, 'q.webp'), '--quality', '50'])
  t.is(q.code, 0, q.stderr)
  t.is((await sharp(join(dir, 'q.webp')).metadata()).format, 'webp')
})

test('--json prints one event per line', async t => {
  const dir = await tmp()
  const r = await runCli(['submit', '--local', '--json', '--task', 'invert', '-i', fixture('low-contrast.jpg'), '-o', join(dir, 'x.jpg')])
  t.is(r.code, 0, r.stderr)
  const events = r.stdout.trim().split('\n').map(l => JSON.parse(l))
  t.is(events.at(-1).event, 'done')
  t.is(events.at(-1).width, 300)
})

test('bad invocations: one line, exit 1, no stack trace', async t => {
  const dir = await tmp()
  const img = fixture('low-contrast.jpg')
  const empty = join(dir, 'empty.jpg')
  await writeFile(empty, '')
  const text = join(dir, 'notes.png')
  await writeFile(text, 'this is not an image\n')
  const cases: Array<[string[], RegExp]> = [
    [['--task', 'hough', '-i', img, '-o', join(dir, 'o.png')], /Unknown operation 'hough'; known operations: blur, /],
    [['--ops', 'rotate:90', '--task', 'flip', '-i', img, '-o', join(dir, 'o.png')], /Give the pipeline one way, not with --task and --ops/],
    [['--ops', 'blur:sigma=500', '-i', img, '-o', join(dir, 'o.png')], /sigma of blur must be a number between 0.3 and 100, got 500$/],
    [['--ops', 'median:size=two', '-i', img, '-o', join(dir, 'o.png')], /size of median must be an odd integer between 3 and 15, got "two"$/],
    [['--task', 'invert', '-i', join(dir, 'missing.jpg'), '-o', join(dir, 'o.png')], /cannot read .*missing\.jpg: no such file/],
    [['--task', 'invert', '-i', empty, '-o', join(dir, 'o.png')], /image is empty/],
    [['--task', 'invert', '-i', text, '-o', join(dir, 'o.png')], /not a supported image/],
    [['--task', 'invert', '-i', img, '-o', join(dir, 'o.bmp')], /cannot tell the output format from .*o\.bmp/],
    [['--task', 'invert', '-i', img, '-o', join(dir, 'no', 'such', 'dir', 'o.png')], /cannot write .*: directory .* does not exist/],
    [['--task', 'invert', '-i', img, '-o', dir + '/'], /cannot tell the output format|is a directory/],
    [['--task', 'invert', '-i', img, '-o', join(dir, 'o.png'), '--quality', '0'], /--quality must be an integer between 1 and 100, got 0/],
    [['--task', 'invert', '-i', img, '-o', join(dir, 'o.png'), '--verify', '1.5'], /--verify takes a share of tiles from 0 to 1, 'all' or 'off', not '1\.5'/],
    [['--task', 'invert', '-i', img, '-o', join(dir, 'o.png'), '--verify', 'all', '--verify', 'off'], /--verify given twice \('all' and 'off'\); give it once/],
    [['--task', 'invert', '-i', fixture('flowers.jpeg'), '-o', join(dir, 'o.png'), '--max-pixels', '1000'], /over the limit of 0.0 MP \(--max-pixels\)/],
    [['-i', img, '-o', join(dir, 'o.png')], /Expected an operation/],
    [['--task', 'invert', '-o', join(dir, 'o.png')], /Expected an input image/],
    [['--task', 'invert', '-i', img, '-o', join(dir, 'o.png')], /no peer runs on this machine .* give --peer \(a swarm\) or --local \(process here\)/],
  ]
  for (const [args, pattern] of cases) {
    const local = args.includes('-o') && !pattern.source.startsWith('no peer runs') ? ['--local', ...args] : args
    // No peer of this machine's is found: the data dir looked in is empty.
    const r = await runCli(['submit', ...local], { env: { ...process.env, TILESWARM_DATA_DIR: join(dir, 'no-peer') } })
    t.is(r.code, 1, args.join(' '))
    assertOneLineError(t, r.stderr, pattern)
  }
  // Not writable: only meaningful when not root (root writes anywhere).
  if (process.getuid?.() !== 0) {
    await chmod(dir, 0o500)
    const r = await runCli(['submit', '--local', '--task', 'invert', '-i', img, '-o', join(dir, 'o.png')])
    assertOneLineError(t, r.stderr, /cannot write .*: permission denied/)
    await chmod(dir, 0o700)
  }
})

test('--debug shows the stack trace', async t => {
  const r = await runCli(['submit', '--local', '--debug', '--task', 'invert', '-i', fixture('truncated.jpg'), '-o', '/tmp/never.png'])
  t.is(r.code, 1)
  t.regex(r.stderr, /InvalidImageError: image is truncated[\s\S]*\n\s+at /)
})

test('--list-ops prints every operation', async t => {
  const r = await runCli(['submit', '--list-ops'])
  t.is(r.code, 0)
  t.regex(r.stdout, /canny \(alias: edge_detection\)/)
  t.regex(r.stdout, /resize: .*\n\s+\[runs on the whole image/)
  t.regex(r.stdout, /median: .*\n\s+size=<odd integer between 3 and 15, default 3>/)
})

test('dist/peer.js on Node < 22 exits with one clear line', t => {
  let old: string | undefined
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    try {
      const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim()
      if (Number(version.slice(1).split('.')[0]) < 22) old = candidate
    } catch {}
  }
  if (old === undefined) {
    t.log('no Node < 22 on this machine; nothing to check')
    t.pass()
    return
  }
  try {
    execFileSync(old, [join(import.meta.dirname, '../../dist/peer.js'), '--help'], { encoding: 'utf8', stdio: 'pipe' })
    t.fail('expected a non-zero exit')
  } catch (err) {
    const e = err as { status: number, stderr: string }
    t.is(e.status, 1)
    t.regex(e.stderr, /^tileswarm: needs Node.js 22 or newer \(this is v\d+\.[\d.]+\); run it as the installed tileswarm command, through npm scripts or with node_modules\/.bin\/node, which bring Node 24\n$/)
  }
})

test('common mistakes get a hint, in one line', async t => {
  const dir = await tmp()
  const img = fixture('low-contrast.jpg')
  const cases: Array<[string[], RegExp]> = [
    [['sumbit', '--task', 'invert'], /^tileswarm: unknown command 'sumbit' \(did you mean 'submit'\?\); commands: peer, submit, status, jobs, watch, cancel, http-token, keygen, id, init$/],
    [['--task', 'invert', '-i', img], /^tileswarm: --task is an option of submit, not of a peer: run 'tileswarm submit --task invert -i /],
    // Two inputs are a batch: it goes to a folder or a zip.
    [['submit', '--local', '--task', 'invert', '-i', img, '--image_path', img, '-o', join(dir, 'o.png')], /a batch of images goes to a folder or a \.zip, not to .*o\.png/],
    [['submit', '--local', '--ops', 'blur:sigma=3,', '-i', img, '-o', join(dir, 'o.png')], /Expected an operation at step 2 of 'blur:sigma=3,' but found nothing \(a stray comma\?\)/],
    [['submit', '--local', '--ops', 'blur,,sobel', '-i', img, '-o', join(dir, 'o.png')], /step 2 of 'blur,,sobel'/],
    [['--listen', 'garbage', '--data-dir', join(dir, 'd')], /^tileswarm: Expected a multiaddr for --listen, like \/ip4\/0\.0\.0\.0\/tcp\/4001, but received 'garbage'/],
    [['--listen', '/ip4/127.0.0.1/tcp/99999', '--data-dir', join(dir, 'd')], /received '\/ip4\/127\.0\.0\.1\/tcp\/99999' \(Value must be smaller than or equal to 65535\)/],
    [['--listen', '/ip4/127.0.0.1/udp/4305', '--data-dir', join(dir, 'd')], /--listen \/ip4\/127\.0\.0\.1\/udp\/4305 has no \/tcp\/ port/],
    [['--listen', '/dns4/localhost/tcp/4305', '--data-dir', join(dir, 'd')], /must start with \/ip4\/ or \/ip6\//],
    [['--slots', '0', '--data-dir', join(dir, 'd')], /^tileswarm: Expected integer between 1 and 1024 for --slots but received '0'$/],
    [['--scaled-by', 'me', '--data-dir', join(dir, 'd')], /^tileswarm: --scaled-by takes a peer id \(12D3KooW\.\.\.\), not 'me'$/],
    [['--scale-out-after', '0', '--data-dir', join(dir, 'd')], /^tileswarm: Expected integer between 1 and 86400 for --scale-out-after but received '0'$/],
    // A place the directory check would pass (root may write anywhere, but /proc makes no files): refused before any work, naming the user's path.
    [['submit', '--local', '--task', 'invert', '-i', img, '-o', '/proc/tileswarm-out.png'], /^tileswarm: cannot write \/proc\/tileswarm-out\.png: /],
  ]
  for (const [args, pattern] of cases) {
    const r = await runCli(args, { timeoutMs: 20_000 })
    t.is(r.code, 1, args.join(' '))
    assertOneLineError(t, r.stderr, pattern)
    t.notRegex(r.stderr, /partial/)
  }
  t.deepEqual((await readdir(dir)).filter(n => n !== 'd'), [], 'nothing left behind')
})

test('--json reports errors as a JSON event on stdout', async t => {
  const dir = await tmp()
  for (const args of [['--task', 'hough'], ['--task', 'invert', '--image_path', 'a', '--image_path', 'b']]) {
    const r = await runCli(['submit', '--local', '--json', ...args, '-o', join(dir, 'o.png')])
    t.is(r.code, 1)
    t.is(r.stderr, '')
    const event = JSON.parse(r.stdout.trim())
    t.is(event.event, 'error')
    t.regex(`${event.name}: ${event.message}`, /^UnknownOperationError: Unknown operation 'hough'|^InvalidParameterError: a batch of images goes to a folder or a \.zip/)
  }
  const r = await runCli(['submit', '--local', '--json', '--task', 'invert', '-i', fixture('truncated.jpg'), '-o', join(dir, 'o.png')])
  t.like(JSON.parse(r.stdout.trim().split('\n').at(-1)!), { event: 'error', name: 'InvalidImageError' })
})
