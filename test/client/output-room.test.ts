import test from 'ava'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noRoom, resultBound } from '../../src/client/output-room.ts'
import { parseOps, resolvePipeline } from '../../src/imaging/index.ts'
import { PEER_JS } from '../helpers/cli.ts'
import { fixture } from '../helpers/fixtures.ts'

/** Whether this machine lets a user mount a small tmpfs of its own (a user and mount namespace). */
function canMountTmpfs (): boolean {
  try {
    execFileSync('unshare', ['-rm', 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k none "$d" && umount "$d" && rmdir "$d"'], { stdio: 'ignore', timeout: 5000 })
    return true
  } catch {
    return false
  }
}

test('a result\'s bound: its raw pixels, as the pipeline leaves them, and the format\'s worst case', async t => {
  const input = await readFile(fixture('low-contrast.jpg'))
  const steps = resolvePipeline(parseOps('invert'))
  const png = await resultBound(input, steps, 'png')
  const half = await resultBound(input, resolvePipeline(parseOps('resize:width=150')), 'png')
  // 300x245 RGB, 8 bits: 220,500 raw bytes; at 150 px wide, 150x123.
  t.is(png, Math.ceil(300 * 245 * 3 * 1.01) + 245 + 256 * 1024)
  t.is(half, Math.ceil(150 * 123 * 3 * 1.01) + 123 + 256 * 1024)
  t.is(await resultBound(Buffer.from('not an image'), steps, 'png'), undefined)
  // Before and after, one line naming the folder, what is needed and what is free.
  t.is(noRoom('/data/out/a.png', 3 * 1024 * 1024, 512 * 1024, true).message, 'cannot write /data/out/a.png: the result may need up to 3.0 MB and /data/out has 512 kB free; free some space or give -o another folder')
  t.is(noRoom('/data/out/a.png', 3 * 1024 * 1024, 512 * 1024, false).message, 'cannot write /data/out/a.png: the result needs 3.0 MB and /data/out has 512 kB free; free some space or give -o another folder')
})

test('-o to a folder too small for the result fails before the job runs, naming the folder, needed and free, and leaves nothing there', async t => {
  if (!canMountTmpfs()) {
    t.log('skipped: this machine does not let a user mount a tmpfs (unshare -rm)')
    t.pass()
    return
  }
  const dir = await mkdtemp(join(tmpdir(), 'tileswarm-room-'))
  // A file system of `size` of its own, for the CLI alone; then what is left in it.
  const run = async (size: string): Promise<{ stdout: string, stderr: string }> => await new Promise(resolve => {
    const script = `mount -t tmpfs -o size=${size} none "$1" && "$2" "$3" submit --local --ops invert -i "$4" -o "$1/out.png"; echo "exit $?"; ls -A "$1"`
    execFile('unshare', ['-rm', 'sh', '-c', script, 'sh', dir, process.execPath, PEER_JS, fixture('low-contrast.jpg')], { timeout: 60_000 }, (_err, stdout, stderr) => { resolve({ stdout, stderr }) })
  })
  const small = await run('64k')
  t.regex(small.stderr, new RegExp(`^tileswarm: cannot write ${dir}/out\\.png: the result may need up to 474 kB and ${dir} has 64 kB free; free some space or give -o another folder\\n$`))
  t.is(small.stdout.trim(), 'exit 1')
  // Room for the bound: written.
  const roomy = await run('1m')
  t.regex(roomy.stdout, /^wrote .*out\.png \(300x245, \d+ bytes\).*\nexit 0\nout\.png\n$/, roomy.stderr)
})
