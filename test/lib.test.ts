import test from 'ava'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
// The package by its own name, as a user's code imports it: the built library and its declarations.
import { submit, type SubmitEvent } from 'tileswarm'
import { runLocal } from '../src/client/local.ts'
import { requestFromFlags } from '../src/client/options.ts'
import { fixture } from './helpers/fixtures.ts'
import { withCluster } from './helpers/swarm.ts'

test.serial('the library: an image\'s bytes in, the result\'s bytes out, with the CLI\'s events; a path in and out too; bad input refused', async t => {
  await withCluster(2, async (cluster, dir) => {
    const peer = cluster.peers[0]!.addrs()[0]!
    const input = fixture('flowers.jpeg')
    await runLocal(requestFromFlags({ ops: 'blur:sigma=2', imagePath: input, out: join(dir, 'local.png') }))
    const local = await readFile(join(dir, 'local.png'))
    const events: SubmitEvent[] = []
    const fromBytes = await submit({ peer, input: await readFile(input), ops: 'blur:sigma=2', onEvent: e => { events.push(e) } })
    t.true(fromBytes.data.equals(local), 'PNG by default, equal to --local')
    t.like(fromBytes, { width: 1920, height: 1080 })
    t.true(events.some(e => e.event === 'accepted') && events.at(-1)?.event === 'done')
    const toFile = await submit({ peer, input, ops: 'blur:sigma=2', output: join(dir, 'swarm.png') })
    t.true((await readFile(join(dir, 'swarm.png'))).equals(local))
    t.true(toFile.data.equals(local))
    await t.throwsAsync(submit({ peer, input, ops: 'medain' }), { name: 'UnknownOperationError', message: /did you mean 'median'/ })
    await t.throwsAsync(submit({ peer, input, ops: 'invert', output: join(dir, 'x.png'), format: 'jpeg' }), { message: /disagree/ })
    await t.throwsAsync(submit({ peer, input: Buffer.alloc(10), ops: 'invert', maxUploadBytes: 5 }), { name: 'LimitExceededError' })
  })
})
