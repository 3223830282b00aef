import test from 'ava'
import { execFile, execFileSync } from 'node:child_process'
import { access, copyFile, mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { REPO, startPeerProcess } from '../../sim/processes.ts'
import { VERSION } from '../../src/common/version.ts'
import { tempDir } from '../helpers/swarm.ts'

const LAUNCHER = join(REPO, 'bin/tileswarm.cjs')

/** The system's node where it is older than tileswarm needs (what an installed command meets), else this one. */
function oldestNode (): string {
  try {
    return Number(execFileSync('/usr/bin/node', ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' })) < 22 ? '/usr/bin/node' : process.execPath
  } catch {
    return process.execPath
  }
}

async function run (node: string, script: string, args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise(resolve => {
    execFile(node, [script, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1, stdout, stderr })
    })
  })
}

test('the launcher runs the CLI on the Node the package brings, whatever node runs it, and passes its exit code', async t => {
  const node = oldestNode()
  t.log(`launcher run by ${execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()}`)
  const version = await run(node, LAUNCHER, ['--version'])
  t.deepEqual(version, { code: 0, stdout: `${VERSION}\n`, stderr: '' })
  const wrong = await run(node, LAUNCHER, ['submit', '--local', '--ops', 'invert', '-i', join(REPO, 'missing.png'), '-o', 'x.png'])
  t.is(wrong.code, 1)
  t.is(wrong.stderr, `tileswarm: cannot read ${join(REPO, 'missing.png')}: no such file or folder\n`)
})

test('without the Node it brings, the launcher says what to do in one line', async t => {
  const dir = await tempDir()
  await mkdir(join(dir, 'bin'))
  await copyFile(LAUNCHER, join(dir, 'bin/tileswarm.cjs'))
  const r = await run(oldestNode(), join(dir, 'bin/tileswarm.cjs'), ['--version'])
  t.is(r.code, 1)
  t.regex(r.stderr, /^tileswarm: the Node\.js 24 it brings \(the npm package `node`, under .*\) is missing: install tileswarm again .*\n$/)
})

/** Debian's jemalloc, where this machine has it (CI installs it: there it must be found). */
const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'
const hasJemalloc = async (): Promise<boolean> => await access(JEMALLOC).then(() => true, () => false)

/** The environment the launcher gave its peer. */
async function launchedEnv (launcher: number): Promise<string[]> {
  const launched = (await readFile(`/proc/${launcher}/task/${launcher}/children`, 'utf8')).trim()
  return (await readFile(`/proc/${launched}/environ`, 'utf8')).split('\0')
}

test.serial('a signal to the launcher reaches the peer once: it stops cleanly, and its record goes; the peer runs on jemalloc where the system has it, with glibc\'s settings given', async t => {
  const jemalloc = await hasJemalloc()
  if (process.env.CI === 'true') t.true(jemalloc, `CI installs libjemalloc2: ${JEMALLOC}`)
  const data = join(await tempDir(), 'data')
  const peer = await startPeerProcess('launched', ['--listen', '/ip4/127.0.0.1/tcp/0', '--slots', '1', '--data-dir', data], { command: [oldestNode()], script: LAUNCHER, env: { ...process.env, MALLOC_ARENA_MAX: '4' } })
  await access(join(data, 'listening.json'))
  const env = await launchedEnv(peer.child.pid!)
  // glibc's settings for giving memory back, should it run on glibc's malloc; a user's own win.
  t.true(env.includes('MALLOC_MMAP_THRESHOLD_=65536'))
  t.true(env.includes('MALLOC_ARENA_MAX=4'))
  t.is(env.includes(`LD_PRELOAD=${JEMALLOC}`), jemalloc)
  t.is(env.includes('MALLOC_CONF=background_thread:true'), jemalloc)
  // What it runs on, as sharp sees it from inside the peer.
  t.regex(await peer.waitFor(/ up: /, 10_000), new RegExp(` up: 1 slot \\(libuv pool of \\d+\\), ${jemalloc ? 'jemalloc' : 'libc'} malloc, `))
  t.is(await peer.stop('SIGTERM'), 0)
  t.false(peer.lines.some(l => /again: exiting now/.test(l)), 'one signal, not two')
  t.true(peer.lines.some(l => /SIGTERM: handing back/.test(l)))
  await t.throwsAsync(access(join(data, 'listening.json')))
})

test.serial('TILESWARM_MALLOC=glibc keeps the peer on glibc\'s malloc', async t => {
  const peer = await startPeerProcess('on glibc', ['--listen', '/ip4/127.0.0.1/tcp/0', '--slots', '1', '--http', 'off'], { command: [oldestNode()], script: LAUNCHER, env: { ...process.env, TILESWARM_MALLOC: 'glibc' } })
  const env = await launchedEnv(peer.child.pid!)
  t.false(env.some(kv => kv.startsWith('LD_PRELOAD=')))
  t.regex(await peer.waitFor(/ up: /, 10_000), /, libc malloc, /)
  t.is(await peer.stop('SIGTERM'), 0)
})
