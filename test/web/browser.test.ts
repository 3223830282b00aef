/// <reference lib="dom" />
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import puppeteer, { type ElementHandle } from 'puppeteer-core'
import sharp from 'sharp'
import { runLocal } from '../../src/client/local.ts'
import { requestFromFlags } from '../../src/client/options.ts'
import { startWebServer } from '../../src/web/server.ts'
import { fixture } from '../helpers/fixtures.ts'
import { Cluster } from '../../sim/cluster.ts'
import { heldAfter, strikeMidJob, tempDir } from '../helpers/swarm.ts'
import { ARTIFACTS, CHROMIUM, browserTest, waitFor } from './browser.ts'

browserTest('in headless Chromium: upload an image, choose blur, watch the tile map fill in by peer while a worker is killed, download the result: --local\'s pixels; the dashboard shows it all', async t => {
  if (CHROMIUM === undefined) return t.fail('CI needs Debian\'s chromium (apt-get install chromium) for this test')
  // Each peer does its first few tiles at once; the rest wait until the dashboard has been seen with the job on it and a
  // worker killed. So every peer, the victim too, has tiles on the map and leases in hand, however the tiles were shared.
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const cluster = new Cluster({ tileSize: 128, leaseMs: 1000 })
  const dir = await tempDir()
  try {
    const coordinator = await cluster.addPeer({ process: heldAfter(8, released) })
    await cluster.addPeer({ process: heldAfter(8, released) })
    const victim = await cluster.addPeer({ process: heldAfter(3, released) })
    await cluster.waitForMesh()
    const web = await startWebServer({ listen: '127.0.0.1:0', peer: coordinator, maxUploadBytes: 64 * 1024 * 1024, maxPixels: 100_000_000, log: () => {} })
    const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] })
    try {
      await mkdir(ARTIFACTS, { recursive: true })
      const input = fixture('flowers.jpeg')
      await runLocal(requestFromFlags({ ops: 'blur', imagePath: input, out: join(dir, 'local.jpg') }))
      const page = await browser.newPage()
      await page.setViewport({ width: 1200, height: 1100 })
      const problems: string[] = []
      page.on('pageerror', err => { problems.push(`page error: ${String(err)}`) })
      page.on('console', msg => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`) })
      await page.goto(web.url, { waitUntil: 'load' })
      // The form comes from the operation registry: blur is the first step, with its sigma.
      await waitFor(page, 'the operations form', () => document.querySelector('#steps .step select[name=op]') !== null)
      t.is(await page.$eval('#steps .step select[name=op]', e => (e as HTMLSelectElement).value), 'blur')
      t.is(await page.$eval('#steps .step input[name=sigma]', e => (e as HTMLInputElement).value), '1.1', 'its default, from the registry')
      // Checks off: the 19 computations the peers make before they wait are all tiles on the map (a check paints none).
      await page.select('#verify', 'off')
      const picker = await page.$('input#files') as ElementHandle<HTMLInputElement> | null
      await picker!.uploadFile(input)
      await waitFor(page, 'the file to be chosen', () => !(document.querySelector('#submit') as HTMLButtonElement).disabled)
      const { promise: victimWorking, resolve: victimPlaced } = Promise.withResolvers<void>()
      strikeMidJob(coordinator, victim, victimPlaced)
      await page.click('#submit')
      await Promise.race([victimWorking, new Promise((_resolve, reject) => setTimeout(() => { reject(new Error('the victim placed no tile')) }, 60_000).unref())])
      // All 19 tiles the peers do before they wait, on the map.
      await waitFor(page, 'tiles on the map', () => Array.from(document.querySelectorAll<HTMLElement>('#map div')).filter(d => d.style.background !== '').length >= 19)
      await page.screenshot({ path: join(ARTIFACTS, 'page-mid-job.png') })

      const dashboard = await browser.newPage()
      await dashboard.setViewport({ width: 1200, height: 800 })
      await dashboard.goto(`${web.url}dashboard`, { waitUntil: 'load' })
      await waitFor(dashboard, 'the job on the dashboard', () => document.querySelector('#jobs tr td')?.textContent !== undefined && document.querySelectorAll('#peers tr').length === 2)
      t.regex(await dashboard.$eval('#jobs', e => e.textContent ?? ''), /flowers.*blur.*tiles.*here/)
      // The peers' own figures are live mid-job: a working peer says hello as its count moves, not only every few seconds.
      await waitFor(dashboard, 'the peers\' Done figures live', () => Array.from(document.querySelectorAll('#peers tr')).every(tr => Number(tr.children[4]?.textContent) > 0), 15_000)
      await waitFor(dashboard, 'each peer\'s graphs', () => document.querySelectorAll('#graphs tr').length === 3 && document.querySelectorAll('#graphs svg polyline').length === 9)
      t.regex(await dashboard.$eval('#graphs', e => e.textContent ?? ''), /\d+%.*MB/)
      await dashboard.screenshot({ path: join(ARTIFACTS, 'dashboard-mid-job.png') })

      // A worker dies holding leases; they expire and go to the others.
      await cluster.crash(victim)
      release()
      await waitFor(page, 'the job to end', () => /^(done|failed)/.test(document.querySelector('#status')?.textContent ?? ''))
      t.regex(await page.$eval('#status', e => e.textContent ?? ''), /^done in/)
      await waitFor(page, 'the preview', () => (document.querySelector('#preview img') as HTMLImageElement | null)?.complete === true)
      await page.screenshot({ path: join(ARTIFACTS, 'page-done.png') })
      const legend = await page.$eval('#legend', e => e.textContent ?? '')
      t.true(cluster.peers.every(p => legend.includes(p.peerId.slice(-8))), `every peer, the killed one too, has tiles on the map: ${legend}`)
      const cells = await page.$$eval('#map div', divs => divs.map(d => (d as HTMLElement).style.background !== ''))
      t.true(cells.length > 24 && cells.every(Boolean), 'every tile of the map is filled in')

      // Downloaded as the page's link gives it.
      const href = await page.$eval('#download', e => (e as HTMLAnchorElement).href)
      t.regex(href, /\/api\/jobs\/[0-9a-f]+\/result\?download=1$/)
      const base64 = await page.evaluate(async (url: string) => {
        const blob = await (await fetch(url)).blob()
        return await new Promise<string>(resolve => { const r = new FileReader(); r.onload = () => { resolve((r.result as string).split(',')[1]!) }; r.readAsDataURL(blob) })
      }, href)
      const downloaded = Buffer.from(base64, 'base64')
      await writeFile(join(dir, 'downloaded.jpg'), downloaded)
      const [mine, local] = await Promise.all([sharp(downloaded).raw().toBuffer(), sharp(join(dir, 'local.jpg')).raw().toBuffer()])
      t.true(mine.equals(local), 'the pixels are --local\'s')
      t.true(downloaded.equals(await readFile(join(dir, 'local.jpg'))), 'so are the bytes')

      await waitFor(dashboard, 'the dead worker gone and the job over', () => /gone/.test(document.querySelector('#peers')?.textContent ?? '') && document.querySelectorAll('#jobs tr').length === 0, 30_000)
      // The job is kept once over: what it was, how it ended, who did its tiles.
      await waitFor(dashboard, 'the ended job in the history', () => /flowers.*blur.*done/.test(document.querySelector('#finished')?.textContent ?? ''))
      const byPeer = await dashboard.$eval('#finished tr', tr => tr.children[6]?.textContent ?? '')
      t.true(cluster.peers.every(p => byPeer.includes(p.peerId.slice(-8))), `the history says who did the tiles: ${byPeer}`)
      await dashboard.screenshot({ path: join(ARTIFACTS, 'dashboard-after.png') })
      t.deepEqual(problems, [])
    } finally {
      release()
      await browser.close()
      await web.close()
    }
  } finally {
    release()
    await cluster.stop()
  }
})
