import { execFile } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const PEER_JS = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/peer.js')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs the built CLI with this test's Node; bounded by a timeout. */
export async function runCli (args: string[], options: { timeoutMs?: number, node?: string } = {}): Promise<CliResult> {
  return await new Promise(resolvePromise => {
    execFile(options.node ?? process.execPath, [PEER_JS, ...args], { timeout: options.timeoutMs ?? 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolvePromise({ code, stdout, stderr })
    })
  })
}
