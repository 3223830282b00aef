import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const PEER_JS = resolve(REPO, 'dist/peer.js')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs the built CLI to completion with this Node (or `node`); bounded by `timeoutMs`. */
export async function runPeerJs (args: string[], options: { timeoutMs?: number, node?: string, env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return await new Promise(resolve => {
    execFile(options.node ?? process.execPath, [PEER_JS, ...args], { timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, env: options.env ?? process.env }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** A peer as its own OS process, running the built CLI. */
export interface PeerProcess {
  name: string
  child: ChildProcess
  addr: string
  peerId: string
  lines: string[]
  /** Resolves with the first line matching `pattern`; rejects after `timeoutMs` or on exit. */
  waitFor: (pattern: RegExp, timeoutMs: number) => Promise<string>
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/** `command` runs `script` (the built peer unless told otherwise) with `args`. */
export async function startPeerProcess (name: string, args: string[], options: { env?: NodeJS.ProcessEnv, command?: string[], script?: string, startTimeoutMs?: number } = {}): Promise<PeerProcess> {
  const [cmd, ...pre] = options.command ?? [process.execPath]
  // Peers started here serve no web page unless asked (--http): many on one machine would contend for its port.
  const http = args.some(a => a === '--http' || a.startsWith('--http=')) || (options.env ?? process.env).TILESWARM_HTTP !== undefined ? [] : ['--http', 'off']
  const child = spawn(cmd!, [...pre, options.script ?? PEER_JS, ...http, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env })
  const lines: string[] = []
  const watchers = new Set<(line: string) => void>()
  let exited = false
  const onLine = (line: string): void => {
    lines.push(line)
    for (const w of [...watchers]) w(line)
  }
  createInterface({ input: child.stdout! }).on('line', onLine)
  createInterface({ input: child.stderr! }).on('line', onLine)
  const exit = new Promise<number | null>(resolve => child.on('exit', code => { exited = true; resolve(code) }))
  const waitFor = async (pattern: RegExp, timeoutMs: number): Promise<string> => {
    const seen = lines.find(l => pattern.test(l))
    if (seen !== undefined) return seen
    return await new Promise((resolve, reject) => {
      const done = (err?: Error, line?: string): void => {
        clearTimeout(timer)
        watchers.delete(watch)
        if (err !== undefined) reject(err)
        else resolve(line!)
      }
      const watch = (line: string): void => { if (pattern.test(line)) done(undefined, line) }
      const timer = setTimeout(() => { done(new Error(`${name}: no line matching ${pattern} within ${timeoutMs} ms; last lines:\n${lines.slice(-10).join('\n')}`)) }, timeoutMs)
      watchers.add(watch)
      void exit.then(code => { done(new Error(`${name} exited (${code}) before printing ${pattern}:\n${lines.slice(-10).join('\n')}`)) })
    })
  }
  const listening = await waitFor(/^listening on /, options.startTimeoutMs ?? 20_000)
  const addr = listening.slice('listening on '.length).trim()
  const peerId = addr.split('/p2p/')[1]!
  return {
    name,
    child,
    addr,
    peerId,
    lines,
    waitFor,
    stop: async (signal = 'SIGINT') => {
      if (!exited) child.kill(signal)
      const timer = setTimeout(() => { if (!exited) child.kill('SIGKILL') }, 10_000)
      const code = await exit
      clearTimeout(timer)
      return code
    },
  }
}

/**
 * `count` peers on loopback, each with `args` and a data dir of its own under
 * `dataRoot`, the first the others' bootstrap; resolves once they have joined
 * it. Each is pushed onto `into` as it starts, so the caller's cleanup stops
 * those that did even if a later one fails.
 */
export async function startLoopbackSwarm (count: number, options: { dataRoot: string, args: string[], into: PeerProcess[] }): Promise<PeerProcess[]> {
  const { into } = options
  const first = into.length
  for (let i = 0; i < count; i++) {
    const bootstrap = i > 0 ? ['--bootstrap', into[first]!.addr] : []
    into.push(await startPeerProcess(`peer ${i}`, ['--listen', '/ip4/127.0.0.1/tcp/0', ...options.args, '--data-dir', join(options.dataRoot, `peer-${i}`), ...bootstrap]))
  }
  const started = into.slice(first)
  await Promise.all(started.slice(1).map(async p => await p.waitFor(/peer joined/, 15_000)))
  return started
}

/** Each peer's log lines so far, into `dir` as PREFIX-peer-I.log: where a bench's time went. */
export async function writePeerLogs (peers: readonly PeerProcess[], dir: string, prefix: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  await Promise.all(peers.map(async (p, i) => { await writeFile(join(dir, `${prefix.replace(/[^\w-]/g, '_')}-peer-${i}.log`), p.lines.join('\n') + '\n') }))
}
