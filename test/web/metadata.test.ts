import test from 'ava'
import { readFile } from 'node:fs/promises'
import sharp from 'sharp'
import { startWebServer } from '../../src/web/server.ts'
import { fixture } from '../helpers/fixtures.ts'
import { withCluster } from '../helpers/swarm.ts'

test.serial('the page keeps a photo\'s metadata unless "keep metadata" is unticked (strip)', async t => {
  await withCluster(1, async cluster => {
    const web = await startWebServer({ listen: '127.0.0.1:0', peer: cluster.peers[0]!, maxUploadBytes: 16 * 1024 * 1024, maxPixels: 100_000_000, log: () => {} })
    try {
      const photo = await readFile(fixture('exif-p3-xmp-orientation-6.jpg'))
      for (const strip of [false, true]) {
        const body = new FormData()
        body.append('ops', 'invert')
        if (strip) body.append('strip', 'true')
        body.append('file', new Blob([new Uint8Array(photo)]), 'photo.jpg')
        const job = await (await fetch(`${web.url}api/jobs`, { method: 'POST', body })).json() as { id: string }
        // The progress stream ends when the job does.
        const stream = await (await fetch(`${web.url}api/jobs/${job.id}/events`, { signal: AbortSignal.timeout(60_000) })).text()
        t.regex(stream, /event: end\ndata: \{[^\n]*"done"/)
        const out = Buffer.from(await (await fetch(`${web.url}api/jobs/${job.id}/result`)).arrayBuffer())
        const m = await sharp(out).metadata()
        t.deepEqual([m.exif !== undefined, m.icc !== undefined, m.xmp !== undefined], [!strip, !strip, !strip], `strip ${strip}`)
      }
    } finally {
      await web.close()
    }
  })
})
