import test from 'ava'
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { readFile } from 'node:fs/promises'
import { startWebServer } from '../../src/web/server.ts'
import { fixture } from '../helpers/fixtures.ts'
import { withCluster } from '../helpers/swarm.ts'

/** A raw client from `from` (a loopback address of its own): what it was answered, when, once the server closes it. */
interface Slow { socket: Socket, answer: Promise<{ status: number, body: string, ms: number }> }

function slowClient (port: number, from: string, opening: string, drip: string): Slow {
  const started = performance.now()
  const socket = connect({ host: '127.0.0.1', port, localAddress: from })
  let text = ''
  // A byte of `drip` every 50 ms, for as long as the server listens.
  let i = 0
  let dripping: NodeJS.Timeout | undefined
  socket.on('connect', () => {
    socket.write(opening)
    dripping = setInterval(() => { if (socket.writable) socket.write(drip[i++ % drip.length]!) }, 50)
  })
  socket.on('data', d => { text += d.toString('latin1') })
  const answer = new Promise<{ status: number, body: string, ms: number }>(resolve => {
    socket.on('close', () => {
      clearInterval(dripping)
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), body: text.split('\r\n\r\n').slice(1).join(''), ms: performance.now() - started })
    })
  })
  socket.on('error', () => {})
  return { socket, answer }
}

/** A multipart upload of `image`, sent whole, from `from`. */
async function upload (port: number, from: string, image: Buffer): Promise<{ status: number, body: string }> {
  const form = new FormData()
  form.append('ops', 'invert')
  form.append('file', new Blob([new Uint8Array(image)]), 'a.jpg')
  const encoded = new Response(form)
  const body = Buffer.from(await encoded.arrayBuffer())
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, localAddress: from, method: 'POST', path: '/api/jobs', headers: { 'content-type': encoded.headers.get('content-type')!, 'content-length': body.length }, signal: AbortSignal.timeout(20_000) }, res => {
      let text = ''
      res.setEncoding('utf8').on('data', (c: string) => { text += c }).on('end', () => { resolve({ status: res.statusCode ?? 0, body: text }) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** The first `n` answers, as they come. */
async function firstAnswers (clients: Slow[], n: number): Promise<Array<{ status: number, body: string }>> {
  const got: Array<{ status: number, body: string }> = []
  return await new Promise(resolve => {
    for (const c of clients) void c.answer.then(a => { got.push(a); if (got.length === n) resolve([...got]) })
  })
}

const SLOW_BODY = (port: number): string => `POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 400000000\r\n\r\n--x\r\n`
const SLOW_HEADERS = 'POST /api/jobs HTTP/1.1\r\n'

test.serial('slow clients cost only themselves: trickled headers and bodies get 408 with the rule, one address holds two upload places, and uploads from others go in meanwhile', async t => {
  await withCluster(1, async cluster => {
    const image = await readFile(fixture('low-contrast.jpg'))
    const web = await startWebServer({ listen: '127.0.0.1:0', peer: cluster.peers[0]!, maxUploadBytes: 512 * 1024 * 1024, maxPixels: 100_000_000, headerTimeoutMs: 1500, pace: { minBytesPerS: 64 * 1024, graceMs: 1500, timeoutMs: 30_000 }, log: () => {} })
    const port = Number(new URL(web.url).port)
    const slow: Slow[] = []
    try {
      // Five uploads of 400 MB at 20 bytes a second from one address, and 50 connections trickling their headers from another.
      const bodies = Array.from({ length: 5 }, () => slowClient(port, '127.0.0.2', SLOW_BODY(port), 'y'))
      const headers = Array.from({ length: Number(process.env.SLOW_HEADER_CLIENTS ?? 50) }, () => slowClient(port, '127.0.0.3', SLOW_HEADERS, 'X'))
      slow.push(...bodies, ...headers)
      // Three of the five are turned away at once: their address has two places already.
      const busy = await firstAnswers(bodies, 3)
      t.deepEqual(busy.map(a => a.status), [503, 503, 503])
      t.regex(busy[0]!.body, /takes 2 uploads at once from one address, and yours \(127\.0\.0\.2\) has 2 under way/)
      // While the rest hold on, others' uploads go in.
      const open = (): number => slow.filter(s => !s.socket.destroyed).length
      const during = await upload(port, '127.0.0.1', image)
      t.is(during.status, 202, during.body)
      const stillOpen = open()
      t.true(stillOpen >= headers.length + 2, `${stillOpen} slow clients open when the upload went in`)
      const answers = await Promise.all(slow.map(async s => await s.answer))
      const held = answers.slice(0, 5).filter(a => a.status === 408)
      t.is(held.length, 2)
      t.regex(held[0]!.body, /average 64 kB\/s or more after their first 1\.5 s \(--min-upload-kbps\)/)
      const headerAnswers = answers.slice(5)
      t.true(headerAnswers.every(a => a.status === 408), JSON.stringify(headerAnswers.filter(a => a.status !== 408).slice(0, 3)))
      t.regex(headerAnswers[0]!.body, /headers took over 1\.5 s \(--web-header-timeout\)/)
      const ms = (xs: Array<{ ms: number }>): string => `${Math.round(Math.min(...xs.map(x => x.ms)))}-${Math.round(Math.max(...xs.map(x => x.ms)))} ms`
      t.log(`${stillOpen} slow clients held on while an upload went in; slow bodies got 408 after ${ms(held)}, slow headers after ${ms(headerAnswers)}`)
      // And after them, uploads from their own addresses go in too.
      t.is((await upload(port, '127.0.0.2', image)).status, 202)
    } finally {
      for (const s of slow) s.socket.destroy()
      await web.close()
    }
  })
})
