import test from 'ava'
import { readFile } from 'node:fs/promises'
import { startWebServer } from '../../src/web/server.ts'
import type { JobEnded } from '../../src/swarm/submit-service.ts'
import { fixture } from '../helpers/fixtures.ts'
import { withCluster } from '../helpers/swarm.ts'

function form (extra: Record<string, string>, image: Buffer): FormData {
  const f = new FormData()
  f.append('ops', 'invert')
  for (const [k, v] of Object.entries(extra)) f.append(k, v)
  f.append('file', new Blob([new Uint8Array(image)]), 'a.png')
  return f
}

test.serial('the page\'s priority field: its jobs are the page\'s in the shares (web: and this peer), a bad value is refused, high only where the operator allows it', async t => {
  await withCluster(1, async cluster => {
    const peer = cluster.peers[0]!
    const web = await startWebServer({ listen: '127.0.0.1:0', peer, maxUploadBytes: 16 * 1024 * 1024, maxPixels: 100_000_000, log: () => {} })
    try {
      const image = await readFile(fixture('test-pattern.png'))
      const post = async (extra: Record<string, string>): Promise<{ status: number, body: Record<string, unknown> }> => {
        const r = await fetch(`${web.url}api/jobs`, { method: 'POST', body: form(extra, image) })
        return { status: r.status, body: await r.json() as Record<string, unknown> }
      }
      const bad = await post({ priority: 'urgent' })
      t.is(bad.status, 400)
      t.regex(String(bad.body.message), /^Expected high, normal, low for priority but received 'urgent'$/)

      const ended = new Promise<JobEnded['job']>(resolve => { peer.events.addEventListener('ended', evt => { resolve((evt as CustomEvent<JobEnded>).detail.job) }, { once: true }) })
      t.is((await post({ priority: 'low' })).status, 202)
      t.like(await ended, { submitter: `web:${peer.peerId}`, priority: 'low' })

      // Nobody may use high here (no --allow-priority, no --allow-submit): the page's job fails with the peer's one line.
      const high = await post({ priority: 'high' })
      t.is(high.status, 202)
      // The progress stream ends with the job.
      await (await fetch(`${web.url}api/jobs/${String(high.body.id)}/events`, { signal: AbortSignal.timeout(60_000) })).text()
      const job = await (await fetch(`${web.url}api/jobs/${String(high.body.id)}`)).json() as { state: string, error?: { message: string } }
      t.is(job.state, 'failed')
      t.regex(job.error?.message ?? '', /may not submit high-priority jobs to this peer/)
    } finally {
      await web.close()
    }
  })
})
