import test from 'ava'
import sharp from 'sharp'
import { startWebServer } from '../../src/web/server.ts'
import { withCluster } from '../helpers/swarm.ts'

/** A job sent as the page sends it; its description once it has ended (its progress stream read to 'end', bounded). */
async function runJob (base: string, image: Buffer): Promise<{ id: string, state: string }> {
  const form = new FormData()
  form.append('ops', 'invert')
  form.append('file', new Blob([new Uint8Array(image)]), 'tiny.png')
  const started = await fetch(`${base}api/jobs`, { method: 'POST', body: form, signal: AbortSignal.timeout(20_000) })
  const job = await started.json() as { id: string }
  if (started.status !== 202) throw new Error(`upload refused: ${JSON.stringify(job)}`)
  const text = await (await fetch(`${base}api/jobs/${job.id}/events`, { signal: AbortSignal.timeout(20_000) })).text()
  const end = text.split('\n\n').find(b => b.includes('event: end'))
  if (end === undefined) throw new Error('no end event')
  return JSON.parse(end.split('\n').find(l => l.startsWith('data: '))!.slice(6)) as { id: string, state: string }
}

test.serial('40 small page jobs after another user\'s do not push its result out: it stays its hour (the list kept 32)', async t => {
  await withCluster(1, async cluster => {
    const web = await startWebServer({ listen: '127.0.0.1:0', peer: cluster.peers[0]!, maxUploadBytes: 1 << 24, maxPixels: 1e8, log: () => {} })
    try {
      const tiny = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#808080' } }).png().toBuffer()
      const first = await runJob(web.url, tiny)
      t.is(first.state, 'done')
      for (let i = 0; i < 40; i++) t.is((await runJob(web.url, tiny)).state, 'done')
      const result = await fetch(`${web.url}api/jobs/${first.id}/result`, { signal: AbortSignal.timeout(10_000) })
      t.is(result.status, 200)
      t.true((await result.arrayBuffer()).byteLength > 0)
    } finally {
      await web.close()
    }
  })
})
