/**
 * What a job costs, counted over every process it runs in: CPU from /proc
 * (each peer's threads by kind), the client's from the shell that ran it.
 */
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/** A process's threads, by what they do: JavaScript, libvips' passes, V8's helpers (collector, compiler), the rest. */
export type ThreadKind = 'main' | 'pool' | 'v8' | 'other'

function kindOf (comm: string): ThreadKind {
  if (comm === 'node' || comm === 'MainThread') return 'main'
  if (/^libvips|^libuv-worker|^vips/.test(comm)) return 'pool'
  if (/^V8/.test(comm)) return 'v8'
  return 'other'
}

function ticks (stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** CPU seconds of a process so far, in all and by thread kind (threads that ended count only in all). */
export function processCpu (pid: number): { all: number, threads: Record<ThreadKind, number> } {
  const threads: Record<ThreadKind, number> = { main: 0, pool: 0, v8: 0, other: 0 }
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      threads[kindOf(stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')))] += ticks(stat)
    } catch {
      // A thread that ended between the listing and the read.
    }
  }
  return { all: ticks(readFileSync(`/proc/${pid}/stat`, 'utf8')), threads }
}

export function cpuSince (before: ReturnType<typeof processCpu>, pid: number): ReturnType<typeof processCpu> {
  const now = processCpu(pid)
  const threads = { ...now.threads }
  for (const k of Object.keys(threads) as ThreadKind[]) threads[k] = Math.max(0, threads[k] - before.threads[k])
  return { all: now.all - before.all, threads }
}

/** Resident and peak memory of a process, in MB. */
export function memoryMb (pid: number): { rss: number, peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (key: string): number => Number(status.match(new RegExp(`^${key}:\\s+(\\d+)`, 'm'))?.[1] ?? 0)
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 }
}

export interface Timed {
  wallS: number
  /** CPU of the command and everything it started, as the shell counts its children. */
  cpuS: number
  stdout: string
  stderr: string
}

/** Runs a command to its end (bounded), timing it and taking its CPU from the shell's `times`. */
export async function timedRun (argv: string[], options: { env?: NodeJS.ProcessEnv, timeoutMs?: number, cwd?: string } = {}): Promise<Timed> {
  const quoted = argv.map(a => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `${quoted} >&3 2>&4; code=$?; times; exit $code`], { stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'], env: options.env ?? process.env, cwd: options.cwd })
    const out = { times: '', stdout: '', stderr: '', err: '' }
    child.stdout!.on('data', (d: Buffer) => { out.times += d.toString() })
    child.stderr!.on('data', (d: Buffer) => { out.err += d.toString() })
    ;(child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => { out.stdout += d.toString() })
    ;(child.stdio[4] as NodeJS.ReadableStream).on('data', (d: Buffer) => { out.stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, options.timeoutMs ?? 600_000)
    child.on('exit', code => {
      clearTimeout(timer)
      const wallS = (performance.now() - started) / 1000
      if (code !== 0) return reject(new Error(`${argv.join(' ')} exited with ${code}: ${out.stderr.trim().split('\n').slice(-3).join(' ')}`))
      // The second line of `times` is the children's user and system time.
      const m = out.times.trim().split('\n')[1]?.match(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/)
      if (m === undefined || m === null) return reject(new Error(`no times from the shell: ${out.times}`))
      resolve({ wallS, cpuS: Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]), stdout: out.stdout, stderr: out.stderr })
    })
  })
}

export const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2 }
