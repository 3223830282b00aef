import test from 'ava'
import { join } from 'node:path'
import { Cluster } from '../../sim/cluster.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { submitToSwarm } from '../../src/client/submit.ts'
import { JobCancelledError } from '../../src/common/errors.ts'
import { createClientNode } from '../../src/net/node.ts'
import type { SwarmPeer } from '../../src/swarm/peer.ts'
import { startWebServer } from '../../src/web/server.ts'
import { heldAfter, noisePng, tempDir } from '../helpers/swarm.ts'

const TOKEN = 'operator-token-0123456789abcdef'

interface SwarmJobs { running: Array<{ jobId: string, here: boolean, client?: string, ops?: string[], inputName?: string, cancellable: boolean }>, finished: Array<{ jobId: string, outcome: string }> }

async function until (check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const started = performance.now()
  while (!await check()) {
    if (performance.now() - started > 20_000) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

test.serial('the dashboard\'s jobs: running ones with who may cancel them, the last hour\'s; Cancel for the operator (here at once, elsewhere with the page\'s token), refused without the token', async t => {
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const cluster = await Cluster.start(2, { process: heldAfter(2, released), spread: 'always', operatorToken: TOKEN })
  const client = await createClientNode()
  const [here, there] = cluster.peers as [SwarmPeer, SwarmPeer]
  const open = await startWebServer({ listen: '127.0.0.1:0', peer: here, maxUploadBytes: 1 << 24, maxPixels: 1e8, log: () => {} })
  const guarded = await startWebServer({ listen: '127.0.0.1:0', token: TOKEN, peer: here, maxUploadBytes: 1 << 24, maxPixels: 1e8, log: () => {} })
  try {
    const dir = await tempDir()
    const input = await noisePng(dir, 256, 192)
    const submit = (peer: SwarmPeer, name: string): Promise<unknown> => {
      const p = submitToSwarm(requestFromFlags({ ops: 'blur:1', imagePath: input, out: join(dir, name) }), { peer: peer.addrs()[0]!, tileSize: 32, node: client })
      p.catch(() => {})
      return p
    }
    const elsewhere = submit(there, 'a.png')
    const local = submit(here, 'b.png')
    const list = async (base: string, headers: Record<string, string> = {}): Promise<SwarmJobs> => await (await fetch(`${base}api/swarm-jobs`, { headers })).json() as SwarmJobs
    await until(async () => (await list(open.url)).running.length === 2 && here.submissions.jobs().some(j => j.phase === 'tiles'), 'both jobs listed')
    const listed = await list(open.url)
    const mine = listed.running.find(j => j.here)!
    const theirs = listed.running.find(j => !j.here)!
    t.is(mine.client, client.peerId.toString())
    t.deepEqual(mine.ops, ['blur'])
    t.is(mine.inputName, 'noise-256x192-3-8-1.png')
    t.true(mine.cancellable, 'the operator of this page may cancel what this peer coordinates')
    t.false(theirs.cancellable, 'a page with no token cannot show another peer it is the operator')

    const cancel = async (base: string, jobId: string, headers: Record<string, string> = {}): Promise<{ status: number, body: { error?: string, message?: string } }> => {
      const r = await fetch(`${base}api/swarm-jobs/${jobId}/cancel`, { method: 'POST', headers })
      return { status: r.status, body: await r.json() as { error?: string, message?: string } }
    }
    const refused = await cancel(open.url, theirs.jobId)
    t.is(refused.status, 403)
    t.is(refused.body.error, 'CancelRefusedError')
    t.is((await cancel(open.url, mine.jobId)).status, 200)
    await t.throwsAsync(local, { instanceOf: JobCancelledError, message: /cancelled by the operator/ })
    t.like((await list(open.url)).finished.find(f => f.jobId === mine.jobId), { outcome: 'cancelled' })

    // Behind the token: nothing without it; with it, the job on the other peer is cancelled there.
    t.is((await fetch(`${guarded.url}api/swarm-jobs`)).status, 401)
    t.is((await cancel(guarded.url, theirs.jobId)).status, 401)
    const auth = { authorization: `Bearer ${TOKEN}` }
    t.true((await list(guarded.url, auth)).running.find(j => j.jobId === theirs.jobId)?.cancellable)
    t.is((await cancel(guarded.url, theirs.jobId, auth)).status, 200)
    await t.throwsAsync(elsewhere, { instanceOf: JobCancelledError, message: /cancelled by the operator/ })
    const unknown = await cancel(guarded.url, 'no-such-job', auth)
    t.is(unknown.status, 404)
    t.is(unknown.body.error, 'UnknownJobError')
  } finally {
    release()
    await open.close()
    await guarded.close()
    await client.stop()
    await cluster.stop()
  }
})
