import test from 'ava'
import { readFile } from 'node:fs/promises'
import { unzipSync, strFromU8 } from 'fflate'
import { startWebServer } from '../../src/web/server.ts'
import { fixture } from '../helpers/fixtures.ts'
import { processFile } from '../../src/imaging/index.ts'
import type { PeerOptions } from '../../src/swarm/options.ts'
import { heldAfter, withCluster } from '../helpers/swarm.ts'

function form (ops: string, files: Array<{ name: string, data: Uint8Array }>): FormData {
  const f = new FormData()
  f.append('ops', ops)
  for (const file of files) f.append('file', new Blob([new Uint8Array(file.data)]), file.name)
  return f
}

/** Reads a job's server-sent events until `until` says so (or the stream ends); bounded. */
async function eventsUntil (base: string, id: string, until: (e: Record<string, unknown>) => boolean): Promise<Array<Record<string, unknown>>> {
  const response = await fetch(`${base}api/jobs/${id}/events`, { signal: AbortSignal.timeout(60_000) })
  const seen: Array<Record<string, unknown>> = []
  const decoder = new TextDecoder()
  let text = ''
  const reader = response.body!.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    text += decoder.decode(value, { stream: true })
    let cut
    while ((cut = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, cut)
      text = text.slice(cut + 2)
      const data = block.split('\n').find(l => l.startsWith('data: '))?.slice(6)
      if (data === undefined) continue
      const e = JSON.parse(data) as Record<string, unknown>
      seen.push(block.includes('event: end') ? { event: 'end', ...e } : e)
      if (until(seen.at(-1)!) || block.includes('event: end')) {
        await reader.cancel()
        return seen
      }
    }
  }
  return seen
}

test.serial('a page batch with bad files: they fail alone, as with the CLI; the result lists every file, the zip carries a report, the download says what it is', async t => {
  await withCluster(2, async cluster => {
    const web = await startWebServer({ listen: '127.0.0.1:0', peer: cluster.peers[0]!, maxUploadBytes: 64 * 1024 * 1024, maxPixels: 100_000_000, log: () => {} })
    try {
      const files = [
        { name: 'flowers.jpeg', data: await readFile(fixture('flowers.jpeg')) },
        { name: 'broken.jpg', data: await readFile(fixture('corrupt-header.jpg')) },
        { name: 'pattern.png', data: await readFile(fixture('test-pattern.png')) },
        { name: 'empty.png', data: new Uint8Array(0) },
        { name: 'cut.jpg', data: await readFile(fixture('truncated.jpg')) },
      ]
      const posted = await fetch(`${web.url}api/jobs`, { method: 'POST', body: form('blur,sobel', files) })
      t.is(posted.status, 202)
      const job = await posted.json() as { id: string }
      const seen = await eventsUntil(web.url, job.id, () => false)
      const end = seen.at(-1) as { event: string, state: string, files: Array<{ name: string, state: string, reason?: string }>, result: { filename: string } }
      t.is(end.event, 'end')
      t.is(end.state, 'done', JSON.stringify(end))
      t.is(end.result.filename, 'tileswarm-blur-sobel-5-images.zip')
      const states = Object.fromEntries(end.files.map(f => [f.name, f.state]))
      t.deepEqual(states, { flowers: 'done', broken: 'failed', pattern: 'done', empty: 'failed', cut: states.cut! })
      t.true(end.files.filter(f => f.state === 'failed').every(f => (f.reason ?? '') !== ''), 'each failure says why')
      const zip = unzipSync(new Uint8Array(await (await fetch(`${web.url}api/jobs/${job.id}/result`)).arrayBuffer()))
      t.true('flowers.jpg' in zip || 'flowers.jpeg' in zip, Object.keys(zip).join(', '))
      const report = strFromU8(zip['report.txt']!)
      t.regex(report, /FAILED {2}broken: /)
      t.regex(report, /FAILED {2}empty: /)
      t.regex(report, /done {4}pattern -> pattern\.png/)
      const json = JSON.parse(strFromU8(zip['report.json']!)) as { files: unknown[] }
      t.is(json.files.length, 5)
      // The images done have their before and after, small, made here; the failed ones none.
      const pattern = end.files.findIndex(f => f.name === 'pattern')
      for (const which of ['in', 'out']) {
        const thumb = await fetch(`${web.url}api/jobs/${job.id}/thumb/${which}-${pattern}`)
        t.is(thumb.status, 200, which)
        t.is(thumb.headers.get('content-type'), 'image/webp')
      }
      t.is((await fetch(`${web.url}api/jobs/${job.id}/thumb/out-${end.files.findIndex(f => f.name === 'broken')}`)).status, 404)
      t.is((await fetch(`${web.url}api/jobs/${job.id}/thumb/..%2f..%2fetc%2fpasswd`)).status, 404)
    } finally {
      await web.close()
    }
  })
})

test.serial('a page job is cancelled by the browser that started it (its key), not by another; it ends cancelled', async t => {
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  await withCluster(1, { process: heldAfter(2, released) }, async cluster => {
    const web = await startWebServer({ listen: '127.0.0.1:0', peer: cluster.peers[0]!, maxUploadBytes: 64 * 1024 * 1024, maxPixels: 100_000_000, log: () => {} })
    try {
      const posted = await fetch(`${web.url}api/jobs`, { method: 'POST', body: form('blur', [{ name: 'flowers.jpeg', data: await readFile(fixture('flowers.jpeg')) }]) })
      const job = await posted.json() as { id: string, cancelKey: string }
      t.regex(job.cancelKey, /^[0-9a-f]{32}$/)
      await eventsUntil(web.url, job.id, e => e.event === 'progress')
      const cancel = async (key: string): Promise<Response> => await fetch(`${web.url}api/jobs/${job.id}/cancel`, { method: 'POST', headers: { 'x-cancel-key': key } })
      t.is((await cancel('0'.repeat(32))).status, 403)
      t.is((await cancel(job.cancelKey)).status, 200)
      const seen = await eventsUntil(web.url, job.id, () => false)
      const end = seen.at(-1) as { event: string, state: string }
      t.is(end.state, 'cancelled', JSON.stringify(end))
      t.is((await fetch(`${web.url}api/jobs/missing/cancel`, { method: 'POST' })).status, 404)
    } finally {
      release()
      await web.close()
    }
  })
})

test.serial('a page batch is cancelled too, mid-batch: it ends cancelled, with no result', async t => {
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  let started = 0
  // The first image is done; the rest wait: the batch is surely running when it is cancelled.
  const processImage: NonNullable<PeerOptions['processImage']> = async (file, steps, options) => {
    if (++started > 1) await released
    return await processFile(file, steps, options)
  }
  await withCluster(1, { processImage }, async cluster => {
    const web = await startWebServer({ listen: '127.0.0.1:0', peer: cluster.peers[0]!, maxUploadBytes: 64 * 1024 * 1024, maxPixels: 100_000_000, log: () => {} })
    try {
      const image = await readFile(fixture('test-pattern.png'))
      const posted = await fetch(`${web.url}api/jobs`, { method: 'POST', body: form('invert', [1, 2, 3].map(i => ({ name: `p${i}.png`, data: image }))) })
      const job = await posted.json() as { id: string, cancelKey: string }
      await eventsUntil(web.url, job.id, e => e.event === 'image')
      t.is((await fetch(`${web.url}api/jobs/${job.id}/cancel`, { method: 'POST', headers: { 'x-cancel-key': job.cancelKey } })).status, 200)
      const end = (await eventsUntil(web.url, job.id, () => false)).at(-1) as { state: string, result?: unknown }
      t.is(end.state, 'cancelled', JSON.stringify(end))
      t.is(end.result, undefined)
    } finally {
      release()
      await web.close()
    }
  })
})
