/// <reference lib="dom" />
import test from 'ava'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'

/** What the browser tests share: the browser, whether to run, and bounded waits on the page. */

/** Debian's chromium (CI installs it); no browser is ever downloaded. */
export const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(p => p !== undefined && existsSync(p))
/** Screenshots of the page and the dashboard, mid-job and after, for a person to look at. */
export const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts')

// Without a browser on this machine the test is skipped; CI (CI=true, as .ci/run sets) installs one, and there it must run.
const inCi = process.env.CI === 'true' || process.env.CI === '1'
export const browserTest = CHROMIUM === undefined && !inCi ? test.skip : test.serial

export async function waitFor (page: Page, what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  await page.waitForFunction(check, { timeout: timeoutMs, polling: 100 }).catch(async (err: Error) => {
    const seen = await page.evaluate(() => document.body.innerText).catch(() => '(page gone)')
    await page.screenshot({ path: join(ARTIFACTS, 'failed.png') }).catch(() => {})
    throw new Error(`waiting for ${what}: ${err.message}; the page says:\n${seen.slice(0, 2000)}`)
  })
}


/** Headless Chromium as the tests drive it. */
export async function launch (): Promise<Browser> {
  return await puppeteer.launch({ executablePath: CHROMIUM!, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] })
}
