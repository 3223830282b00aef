import test from 'ava'
import { spawn } from 'node:child_process'
import { access } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { PEER_JS } from '../../sim/processes.ts'
import { Cluster } from '../../sim/cluster.ts'
import { fixture } from '../helpers/fixtures.ts'
import { heldAfter, tempDir } from '../helpers/swarm.ts'

test('Ctrl-C on one image\'s submit says how far the job got and that nothing was written, and exits 130', async t => {
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const cluster = new Cluster({ tileSize: 128 })
  try {
    // Two tiles done, then the job holds: the submit is interrupted mid-job.
    const peer = await cluster.addPeer({ process: heldAfter(2, released) })
    const dir = await tempDir()
    const out = join(dir, 'out.png')
    const child = spawn(process.execPath, [PEER_JS, 'submit', '--peer', peer.addrs()[0]!, '--json', '--ops', 'invert', '-i', fixture('flowers.jpeg'), '-o', out], { stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise<number | null>(resolve => child.on('exit', code => { resolve(code) }))
    const events: Array<Record<string, unknown>> = []
    const { promise: twoDone, resolve: onTwo } = Promise.withResolvers<void>()
    createInterface({ input: child.stdout }).on('line', line => {
      const event = JSON.parse(line) as Record<string, unknown>
      events.push(event)
      if (event.event === 'progress' && event.done === 2) onTwo()
    })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 60_000)
    await Promise.race([twoDone, exited])
    child.kill('SIGINT')
    t.is(await exited, 130)
    clearTimeout(timer)
    const total = (events.find(e => e.event === 'accepted') as { tiles: number, phases: number }).tiles
    t.deepEqual(events.at(-1), { event: 'interrupted', done: 2, total, message: `cancelled: 2 of ${total} tiles done; nothing written` })
    await t.throwsAsync(access(out))
  } finally {
    release()
    await cluster.stop()
  }
})
