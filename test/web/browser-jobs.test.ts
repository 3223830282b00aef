/// <reference lib="dom" />
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ElementHandle, Page } from 'puppeteer-core'
import { startWebServer } from '../../src/web/server.ts'
import { fixture } from '../helpers/fixtures.ts'
import { Cluster } from '../../sim/cluster.ts'
import { heldAfter, tempDir } from '../helpers/swarm.ts'
import { ARTIFACTS, CHROMIUM, browserTest, launch, waitFor } from './browser.ts'

async function choose (page: Page, files: string[]): Promise<void> {
  const picker = await page.$('input#files') as ElementHandle<HTMLInputElement> | null
  await picker!.uploadFile(...files)
}

const statusText = async (page: Page): Promise<string> => await page.$eval('#status', e => e.textContent ?? '')
const processDisabled = async (page: Page): Promise<boolean> => await page.$eval('#submit', e => (e as HTMLButtonElement).disabled)

browserTest('in headless Chromium: a job survives a reload and is cancelled from the page; a batch\'s bad files fail alone and are listed; files the peer would refuse are refused before the upload; a TIFF result has its preview', async t => {
  if (CHROMIUM === undefined) return t.fail('CI needs Debian\'s chromium (apt-get install chromium) for this test')
  // Each peer does a few tiles, then holds the rest until released: the first job is surely running across the reload.
  const { promise: released, resolve: release } = Promise.withResolvers<void>()
  const cluster = new Cluster({ tileSize: 128, leaseMs: 1000 })
  const dir = await tempDir()
  const coordinator = await cluster.addPeer({ process: heldAfter(4, released) })
  await cluster.addPeer({ process: heldAfter(4, released) })
  await cluster.waitForMesh()
  const web = await startWebServer({ listen: '127.0.0.1:0', peer: coordinator, maxUploadBytes: 64 * 1024 * 1024, maxPixels: 100_000_000, log: () => {} })
  const browser = await launch()
  try {
    await mkdir(ARTIFACTS, { recursive: true })
    const page = await browser.newPage()
    await page.setViewport({ width: 1200, height: 1400 })
    const problems: string[] = []
    page.on('pageerror', err => { problems.push(`page error: ${String(err)}`) })
    await page.goto(web.url, { waitUntil: 'load' })
    await waitFor(page, 'the operations form', () => document.querySelector('#steps .step select[name=op]') !== null)
    await page.select('#verify', 'off')

    // One image, held mid-job: its address names it, and a reload brings the live view back.
    await choose(page, [fixture('flowers.jpeg')])
    await waitFor(page, 'the file to be chosen', () => !(document.querySelector('#submit') as HTMLButtonElement).disabled)
    await page.click('#submit')
    await waitFor(page, 'tiles on the map', () => Array.from(document.querySelectorAll<HTMLElement>('#map div')).some(d => d.style.background !== ''))
    t.true(await processDisabled(page), 'Process waits while the job runs')
    const id = /#job=([0-9a-f]+)$/.exec(page.url())?.[1]
    t.truthy(id, page.url())
    await page.reload({ waitUntil: 'load' })
    await waitFor(page, 'the live view back after the reload', () => Array.from(document.querySelectorAll<HTMLElement>('#map div')).some(d => d.style.background !== '') && /tiles/.test(document.querySelector('#status')?.textContent ?? ''))
    t.regex(await page.$eval('#map', e => (e as HTMLElement).style.backgroundImage), /thumb\/input/, 'the map is drawn over the image')
    t.true(await processDisabled(page), 'Process still waits after the reload')
    await page.screenshot({ path: join(ARTIFACTS, 'page-after-reload.png') })
    // The browser that started it may cancel it, after the reload too.
    await waitFor(page, 'Cancel to show', () => !(document.querySelector('#cancel') as HTMLElement).hidden)
    await page.click('#cancel')
    await waitFor(page, 'the job to be cancelled', () => /^cancelled/.test(document.querySelector('#status')?.textContent ?? ''))
    release()

    // A selection with files the peer would refuse: each refused with a line naming it, before any upload.
    await writeFile(join(dir, 'drawing.svg'), '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    await writeFile(join(dir, 'empty.png'), '')
    await writeFile(join(dir, 'fake.heic'), Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from('ftypisom'), Buffer.alloc(200, 7)]))
    await choose(page, [fixture('flowers.jpeg'), fixture('test-pattern.png'), fixture('corrupt-header.jpg'), fixture('4.webp'), join(dir, 'drawing.svg'), join(dir, 'empty.png'), join(dir, 'fake.heic')])
    await waitFor(page, 'the refusals', () => document.querySelectorAll('#refused div').length === 3)
    const refused = await page.$eval('#refused', e => e.textContent ?? '')
    t.regex(refused, /drawing\.svg: an SVG drawing/)
    t.regex(refused, /empty\.png: the file is empty \(0 bytes\)/)
    t.regex(refused, /fake\.heic: an ISO media file of brand 'isom'/)
    t.regex(await page.$eval('#chosen', e => e.textContent ?? ''), /^4 images/)
    // The cancelled job is over: Process is back (a reload chose no file, so only now).
    t.false(await processDisabled(page), 'Process is back once the job is over')
    // The corrupt one fails alone: the batch is done, says so, and lists it with why.
    await page.click('#submit')
    await waitFor(page, 'the batch to end', () => /^(done|failed)/.test(document.querySelector('#status')?.textContent ?? ''))
    t.regex(await statusText(page), /^done in .*: 3 of 4 images processed .* 1 failed/)
    const rows = await page.$$eval('#file-list tr', trs => trs.map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent ?? '')))
    t.is(rows.length, 4)
    const broken = rows.find(r => r[1] === 'corrupt-header')
    t.truthy(broken, JSON.stringify(rows))
    t.regex(broken![2]!, /failed/)
    t.not(broken![3], '', 'it says why')
    // Each image done shows before and after, thumbnails made on the peer.
    await waitFor(page, 'the batch\'s previews', () => { const imgs = Array.from(document.querySelectorAll<HTMLImageElement>('#file-list img.thumb')); return imgs.length === 6 && imgs.every(i => i.complete && i.naturalWidth > 0) })
    t.regex(await page.$eval('#download', e => (e as HTMLAnchorElement).getAttribute('download') ?? ''), /^tileswarm-blur-4-images\.zip$/)
    await waitFor(page, 'the recent jobs to count the failure', () => /done, 1 of 4 failed/.test(document.querySelector('#jobs')?.textContent ?? ''))
    await page.screenshot({ path: join(ARTIFACTS, 'page-batch.png') })

    // A TIFF result, which browsers do not show: its preview is the peer's thumbnail, before and after.
    await choose(page, [fixture('flowers.jpeg')])
    await page.select('#format', 'tiff')
    await waitFor(page, 'Process to be ready', () => !(document.querySelector('#submit') as HTMLButtonElement).disabled)
    await page.click('#submit')
    // Its own end: until the page takes the job on, the status still says how the batch ended.
    await waitFor(page, 'the TIFF job to end', () => /^(done in .*flowers-blur\.tif|failed)/.test(document.querySelector('#status')?.textContent ?? ''))
    t.regex(await statusText(page), /^done in .*flowers-blur\.tif/)
    await waitFor(page, 'both previews to load', () => { const imgs = Array.from(document.querySelectorAll<HTMLImageElement>('#preview img')); return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0) })
    const widths = await page.$$eval('#preview img', imgs => imgs.map(i => (i as HTMLImageElement).naturalWidth))
    t.deepEqual(widths, [512, 512], 'thumbnails, not the full-size files')
    await page.screenshot({ path: join(ARTIFACTS, 'page-tiff.png') })
    t.deepEqual(problems, [])
  } finally {
    release()
    await browser.close()
    await web.close()
    await cluster.stop()
  }
})
