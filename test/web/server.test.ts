import test from 'ava'
import { readFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { unzipSync } from 'fflate'
import sharp from 'sharp'
import { runLocal } from '../../src/client/local.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { startWebServer, tokenFromSwarmKey, type WebServer } from '../../src/web/server.ts'
import { fixture } from '../helpers/fixtures.ts'
import { withCluster } from '../helpers/swarm.ts'

/** A job's progress as the page reads it: every server-sent event up to 'end' (bounded). */
async function events (base: string, id: string, headers: Record<string, string> = {}): Promise<{ events: Array<Record<string, unknown>>, end: Record<string, unknown> }> {
  const response = await fetch(`${base}api/jobs/${id}/events`, { headers, signal: AbortSignal.timeout(60_000) })
  const text = await response.text()
  const out: Array<Record<string, unknown>> = []
  let end: Record<string, unknown> | undefined
  for (const block of text.split('\n\n')) {
    const data = block.split('\n').find(l => l.startsWith('data: '))?.slice(6)
    if (data === undefined) continue
    if (block.includes('event: end')) end = JSON.parse(data) as Record<string, unknown>
    else out.push(JSON.parse(data) as Record<string, unknown>)
  }
  if (end === undefined) throw new Error(`no end event in ${text.slice(-500)}`)
  return { events: out, end }
}

function form (ops: string, files: Array<{ name: string, data: Uint8Array }>, extra: Record<string, string> = {}): FormData {
  const f = new FormData()
  f.append('ops', ops)
  for (const [k, v] of Object.entries(extra)) f.append(k, v)
  for (const file of files) f.append('file', new Blob([new Uint8Array(file.data)]), file.name)
  return f
}

/** A request as sent, not as fetch would tidy it: any Host (a rebound DNS name), any path (dots and all). */
async function raw (base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: string }> {
  const { hostname, port } = new URL(base)
  return await new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, headers, signal: AbortSignal.timeout(10_000) }, res => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    })
    req.on('error', reject)
    req.end()
  })
}

function metric (text: string, name: string): number {
  const line = text.split('\n').find(l => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
  return line === undefined ? NaN : Number(line.split(' ').at(-1))
}

test.serial('the web page\'s API: an image uploaded comes back as --local makes it, with a tile map by peer; a batch comes back zipped under safe names; the metrics move', async t => {
  await withCluster(3, async (cluster, dir) => {
    const peer = cluster.peers[0]!
    const web: WebServer = await startWebServer({ listen: '127.0.0.1:0', peer, maxUploadBytes: 64 * 1024 * 1024, maxPixels: 100_000_000, log: () => {} })
    try {
      const base = web.url
      t.false(web.tokenRequired)
      const health = await (await fetch(`${base}healthz`)).json() as { status: string, peers: number }
      t.is(health.status, 'ok')
      t.is(health.peers, 2)
      const before = await (await fetch(`${base}metrics`)).text()

      const input = fixture('flowers.jpeg')
      await runLocal(requestFromFlags({ ops: 'blur:sigma=2', imagePath: input, out: join(dir, 'local.jpg') }))
      const posted = await fetch(`${base}api/jobs`, { method: 'POST', body: form('blur:sigma=2', [{ name: 'flowers.jpeg', data: await readFile(input) }], { verify: 'all' }) })
      t.is(posted.status, 202)
      const job = await posted.json() as { id: string, kind: string }
      t.is(job.kind, 'image')
      const { events: seen, end } = await events(base, job.id)
      t.is(end.state, 'done', JSON.stringify(end))
      const accepted = seen.find(e => e.event === 'accepted') as { tiles: number, phases: number }
      // Every tile is on the map once, coloured by a peer that did it.
      const placed = seen.filter(e => e.event === 'progress').flatMap(e => Object.entries((e.placed ?? {}) as Record<string, number[]>).flatMap(([p, tiles]) => tiles.map(n => [n, p] as const)))
      t.is(placed.length, accepted.tiles * accepted.phases)
      t.is(new Set(placed.map(([n]) => n)).size, placed.length)
      t.true(placed.every(([, p]) => cluster.peers.some(q => q.peerId === p)))
      // The checks the page asked for (every tile of the other peers twice) are reported with the result.
      const done = seen.find(e => e.event === 'done') as { verify?: { checked: number, extra: number } }
      t.is(done.verify?.checked, done.verify?.extra, JSON.stringify(done.verify))
      const result = await fetch(`${base}api/jobs/${job.id}/result?download=1`)
      t.is(result.headers.get('content-type'), 'image/jpeg')
      t.regex(result.headers.get('content-disposition') ?? '', /^attachment; filename="flowers-blur\.jpg"$/)
      t.true(Buffer.from(await result.arrayBuffer()).equals(await readFile(join(dir, 'local.jpg'))), 'the page\'s result is --local\'s, byte for byte')

      // A batch: names from the browser are never paths here.
      const files = [
        { name: 'Landscape_5.jpg', data: await readFile(fixture('Landscape_5.jpg')) },
        { name: '../../../../etc/passwd.png', data: await readFile(fixture('test-pattern.png')) },
        { name: '.hidden.webp', data: await readFile(fixture('4.webp')) },
      ]
      const batch = await (await fetch(`${base}api/jobs`, { method: 'POST', body: form('greyscale', files) })).json() as { id: string, kind: string }
      t.is(batch.kind, 'batch')
      const b = await events(base, batch.id)
      t.is(b.end.state, 'done', JSON.stringify(b.end))
      t.false(JSON.stringify(b.events).includes(tmpdir()), 'the page is not told where this peer keeps files')
      const zip = unzipSync(new Uint8Array(await (await fetch(`${base}api/jobs/${batch.id}/result`)).arrayBuffer()))
      t.deepEqual(Object.keys(zip).sort(), ['Landscape_5.jpg', 'hidden.webp', 'passwd.png', 'report.json', 'report.txt'])
      for (const [name, data] of Object.entries(zip)) if (!name.startsWith('report')) t.true(((await sharp(data).metadata()).width ?? 0) > 0, name)

      // The image's previews are small WebPs made here, the input's and the result's.
      for (const which of ['input', 'result']) {
        const thumb = await fetch(`${base}api/jobs/${job.id}/thumb/${which}`)
        t.is(thumb.headers.get('content-type'), 'image/webp', which)
        const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata()
        t.is(Math.max(meta.width ?? 0, meta.height ?? 0), 512, which)
      }
      t.is((await fetch(`${base}api/jobs/${batch.id}/thumb/result`)).status, 404, 'a zip has no preview')

      // Two files of one name: two outputs, whatever format they go to.
      const twins = await (await fetch(`${base}api/jobs`, { method: 'POST', body: form('invert', [{ name: 'cat.jpg', data: await readFile(input) }, { name: 'cat.jpeg', data: await readFile(input) }], { format: 'png' }) })).json() as { id: string }
      t.is((await events(base, twins.id)).end.state, 'done')
      t.deepEqual(Object.keys(unzipSync(new Uint8Array(await (await fetch(`${base}api/jobs/${twins.id}/result`)).arrayBuffer()))).sort(), ['cat-2.png', 'cat.png', 'report.json', 'report.txt'])

      const after = await (await fetch(`${base}metrics`)).text()
      for (const name of ['tileswarm_coordinated_units_total', 'tileswarm_leases_granted_total', 'tileswarm_bytes_in_total', 'tileswarm_bytes_out_total']) {
        t.true(metric(after, name) > metric(before, name), `${name} moved (${metric(before, name)} to ${metric(after, name)})`)
      }
      t.regex(after, /tileswarm_jobs_total\{kind="tiles",outcome="done"\} [1-9]/)
      t.regex(after, /tileswarm_jobs_total\{kind="batch",outcome="done"\} [1-9]/)
      // What this peer's own worker did, however the tiles were shared.
      const units = after.split('\n').filter(l => l.startsWith('tileswarm_worker_units_total{')).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0)
      t.is(units, peer.worker.computed)
      t.is(metric(after, 'tileswarm_peers_connected'), 2)
      const listed = await (await fetch(`${base}api/jobs`)).json() as Array<{ id: string }>
      t.deepEqual(listed.map(j => j.id), [twins.id, batch.id, job.id])
    } finally {
      await web.close()
    }
  })
})

test.serial('the web server refuses what it must: uploads too large, not images, bad pipelines, other sites, other hosts, wrong tokens, paths outside its assets', async t => {
  await withCluster(1, async cluster => {
    const peer = cluster.peers[0]!
    const image = await readFile(fixture('flowers.jpeg'))
    const open = await startWebServer({ listen: '127.0.0.1:0', peer, maxUploadBytes: image.length + 1000, maxPixels: 100_000_000, log: () => {} })
    try {
      const post = async (body: FormData, headers: Record<string, string> = {}): Promise<{ status: number, body: { error: string, message: string } }> => {
        const r = await fetch(`${open.url}api/jobs`, { method: 'POST', body, headers })
        return { status: r.status, body: await r.json() as { error: string, message: string } }
      }
      const big = await post(form('blur', [{ name: 'a.jpg', data: image }, { name: 'b.jpg', data: image }]))
      t.is(big.status, 413)
      t.regex(big.body.message, /over this peer's limit of \d+ bytes/)
      const junk = await post(form('blur', [{ name: 'notes.png', data: Buffer.from('this is not an image at all') }]))
      t.is(junk.status, 400)
      t.is(junk.body.error, 'InvalidImageError')
      t.regex(junk.body.message, /^notes: not a supported image/)
      const misspelt = await post(form('medain', [{ name: 'a.jpg', data: image }]))
      t.is(misspelt.status, 400)
      t.regex(misspelt.body.message, /did you mean 'median'/)
      t.is((await post(form('blur', []))).status, 400)
      t.is((await post(form('blur', [{ name: 'a.jpg', data: image }], { quality: '500' }))).status, 400)
      t.is((await post(form('blur', [{ name: 'a.jpg', data: image }], { format: 'bmp' }))).status, 400)
      const badVerify = await post(form('blur', [{ name: 'a.jpg', data: image }], { verify: 'most' }))
      t.is(badVerify.status, 400)
      t.regex(badVerify.body.message, /^verify takes a share of tiles from 0 to 1, 'all' or 'off', not 'most'/)
      // Another site's page cannot make a browser submit here.
      t.is((await post(form('blur', [{ name: 'a.jpg', data: image }]), { origin: 'http://evil.example' })).status, 403)
      t.is((await post(form('blur', [{ name: 'a.jpg', data: image }]), { 'sec-fetch-site': 'cross-site' })).status, 403)
      // Nor a name rebound to loopback.
      const port = new URL(open.url).port
      t.is((await raw(open.url, '/api/status', { host: `evil.example:${port}` })).status, 421)
      t.is((await raw(open.url, '/api/status', { host: `localhost:${port}` })).status, 200)
      for (const path of ['/assets/..%2f..%2fpeer.ts', '/assets/../../web/server.ts', '/assets/../../../package.json', '/assets/%2e%2e/server.ts', '/assets/index.html', '/assets/server.ts', '/../../package.json', '/..%2f..%2fpackage.json', '/api/jobs/..%2f..%2fetc%2fpasswd/result', '/assets/.%2e/.%2e/package.json']) {
        const r = await raw(open.url, path)
        t.is(r.status, 404, path)
        t.false(r.body.includes('import ') || r.body.includes('"dependencies"'), path)
      }
      const page = await fetch(open.url)
      t.regex(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/)
      t.is(page.headers.get('x-content-type-options'), 'nosniff')
      const error = await post(form('blur', [{ name: 'a.jpg', data: image }]), { 'content-type': 'multipart/form-data; boundary=x' })
      t.false(JSON.stringify(error.body).includes('    at '), 'no stack trace')
    } finally {
      await open.close()
    }

    await t.throwsAsync(startWebServer({ listen: '0.0.0.0:0', peer, maxUploadBytes: 1000, maxPixels: 1000, log: () => {} }), { message: /reachable from other machines: give --http-token/ })
    for (const weak of ['', 'short', 'change-me-please-now']) {
      await t.throwsAsync(startWebServer({ listen: '0.0.0.0:0', token: weak, peer, maxUploadBytes: 1000, maxPixels: 1000, log: () => {} }), { message: /--http-token must be at least 16 characters/ }, `'${weak}'`)
    }
    // A peer that takes jobs only from --allow-submit peers: the page shows, and does not submit.
    const narrowed = await startWebServer({ listen: '127.0.0.1:0', peer, maxUploadBytes: image.length + 1000, maxPixels: 100_000_000, allowSubmit: new Set(), canSubmit: false, log: () => {} })
    try {
      const r = await fetch(`${narrowed.url}api/jobs`, { method: 'POST', body: form('blur', [{ name: 'a.jpg', data: image }]) })
      t.is(r.status, 403)
      t.regex((await r.json() as { message: string }).message, /--allow-submit/)
      t.is(((await (await fetch(`${narrowed.url}api/ops`)).json()) as { canSubmit: boolean }).canSubmit, false)
    } finally {
      await narrowed.close()
    }
    const token = tokenFromSwarmKey(Buffer.alloc(32, 7))
    t.regex(token, /^[0-9a-f]{32}$/)
    const guarded = await startWebServer({ listen: '0.0.0.0:0', token, peer, maxUploadBytes: 1000, maxPixels: 1000, log: () => {} })
    try {
      const url = guarded.url.replace('0.0.0.0', '127.0.0.1')
      t.true(guarded.tokenRequired)
      t.is((await fetch(`${url}healthz`)).status, 200)
      for (const path of ['', 'dashboard', 'metrics', 'api/status', 'api/jobs']) {
        t.is((await fetch(`${url}${path}`)).status, 401, path)
        t.is((await fetch(`${url}${path}`, { headers: { authorization: 'Bearer wrong' } })).status, 401, path)
        t.is((await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } })).status, 200, path)
      }
      t.is((await fetch(`${url}api/jobs`, { method: 'POST', body: form('blur', []) })).status, 401)
      // The address the peer prints: the token once, then a cookie.
      const landing = await fetch(`${url}?token=${token}`, { redirect: 'manual' })
      t.is(landing.status, 303)
      const cookie = landing.headers.get('set-cookie') ?? ''
      t.regex(cookie, new RegExp(`^tileswarm_token_${new URL(url).port}=`), 'a cookie per port: peers on one host keep theirs')
      t.regex(cookie, /HttpOnly/)
      t.regex(cookie, /SameSite=Strict/)
      t.is((await fetch(`${url}api/status`, { headers: { cookie: cookie.split(';')[0]! } })).status, 200)
      t.is((await fetch(`${url}?token=wrong`, { redirect: 'manual' })).status, 401)
    } finally {
      await guarded.close()
    }
  })
})
