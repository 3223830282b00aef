import test from 'ava'
import { execFile, execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { REPO } from '../../sim/processes.ts'
import { oldNodeProblem } from '../../src/node-check.ts'
import { Interruption } from '../../src/cli/interruption.ts'

test('Node 22 and newer run tileswarm; older ones are told in one line what to do', t => {
  for (const ok of ['v22.0.0', 'v24.21.0', 'v30.1.2']) t.is(oldNodeProblem(ok), undefined, ok)
  t.is(oldNodeProblem('v20.20.2'), 'needs Node.js 22 or newer (this is v20.20.2); run it as the installed tileswarm command, through npm scripts or with node_modules/.bin/node, which bring Node 24')
})

test('the library on Node < 22 refuses with the CLI\'s line, not a SyntaxError', async t => {
  let old = false
  try {
    old = Number(execFileSync('/usr/bin/node', ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' })) < 22
  } catch {}
  if (!old) {
    t.log('no Node < 22 at /usr/bin/node; nothing to check')
    t.pass()
    return
  }
  const message = await new Promise<string>(resolve => {
    execFile('/usr/bin/node', ['-e', `import(${JSON.stringify(join(REPO, 'dist/index.js'))}).then(() => console.log('loaded'), e => console.log(e.name + ': ' + e.message))`], { timeout: 30_000 }, (_err, stdout) => { resolve(stdout.trim()) })
  })
  t.regex(message, /^Error: tileswarm needs Node\.js 22 or newer \(this is v20\.[\d.]+\); run it as the installed tileswarm command/)
})

test('an interrupted submit says how far it got, and that nothing was written', t => {
  const on = new Interruption({ json: false, local: false })
  t.is(on.message(), 'cancelled: the swarm had not taken the job yet; nothing written')
  on.heard({ event: 'accepted', jobId: 'j', width: 10, height: 10, tiles: 40, phases: 1, tileSize: 256, halo: 0, notes: [] })
  t.is(on.message(), 'cancelled: no tile done yet; nothing written')
  on.heard({ event: 'progress', done: 12, total: 40, workers: 2 })
  t.is(on.message(), 'cancelled: 12 of 40 tiles done; nothing written')
  on.heard({ event: 'encoding' })
  t.is(on.message(), 'cancelled: the result was being received; nothing written')
  t.is(new Interruption({ json: false, local: true }).message(), 'cancelled; nothing written')
})
