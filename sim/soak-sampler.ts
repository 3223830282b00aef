/**
 * The soak's eyes: each peer process's resident memory and open file
 * descriptors from /proc, every second, and its V8 figures from /metrics.
 */
import { readdirSync, readFileSync } from 'node:fs'

export interface MemorySample { at: number, rssMb: number, fds: number }

/** VmRSS in MB and the count of open fds of `pid`; undefined once it has gone. */
export function sampleProcess (pid: number): { rssMb: number, fds: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1])
    return { rssMb: Math.round(kb / 102.4) / 10, fds: readdirSync(`/proc/${pid}/fd`).length }
  } catch {
    return undefined
  }
}

/** V8's heap used, its external memory and the process's RSS as the peer's /metrics says them, in MB. */
export async function heapFigures (httpPort: number): Promise<Record<string, number> | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
    const read = (name: string): number => Math.round(Number(new RegExp(`^tileswarm_${name} ([0-9.e+]+)`, 'm').exec(text)?.[1]) / 1e5) / 10
    return { heapUsedMb: read('nodejs_heap_size_used_bytes'), heapTotalMb: read('nodejs_heap_size_total_bytes'), externalMb: read('nodejs_external_memory_bytes') }
  } catch {
    return undefined
  }
}

/** One peer's figures over the soak, across its restarts (a restart is a fresh process, sampled on). */
export class PeerMeter {
  readonly samples: MemorySample[] = []
  start: MemorySample | undefined
  end: MemorySample | undefined
  startHeap: Record<string, number> | undefined
  endHeap: Record<string, number> | undefined
  startMap: Record<string, number> | undefined
  endMap: Record<string, number> | undefined
  restarts = 0

  readonly name: string
  private readonly pid: () => number | undefined

  constructor (name: string, pid: () => number | undefined) {
    this.name = name
    this.pid = pid
  }

  sample (at: number): MemorySample | undefined {
    const pid = this.pid()
    const s = pid !== undefined ? sampleProcess(pid) : undefined
    if (s === undefined) return undefined
    const sample = { at, ...s }
    this.samples.push(sample)
    return sample
  }

  get peakMb (): number { return Math.max(...this.samples.map(s => s.rssMb)) }

  /** Its figures, and what fails: end-idle RSS over `maxRatio` times the start, fds grown by more than `fdSlack`. */
  verdict (maxRatio: number, fdSlack: number): { report: Record<string, unknown>, failures: string[] } {
    const failures: string[] = []
    const start = this.start!
    const end = this.end!
    const ratio = end.rssMb / start.rssMb
    if (ratio > maxRatio) failures.push(`${this.name}: end-idle RSS ${end.rssMb} MB is ${ratio.toFixed(2)}x its start ${start.rssMb} MB (limit ${maxRatio}x)`)
    if (end.fds - start.fds > fdSlack) failures.push(`${this.name}: ${end.fds} fds at the end against ${start.fds} at the start (slack ${fdSlack})`)
    const report = { startRssMb: start.rssMb, peakRssMb: this.peakMb, endRssMb: end.rssMb, ratio: Math.round(ratio * 100) / 100, startFds: start.fds, endFds: end.fds, restarts: this.restarts, startHeap: this.startHeap, endHeap: this.endHeap, startMap: this.startMap, endMap: this.endMap }
    return { report, failures }
  }
}

/** Where a process's resident memory lies, in MB: glibc's main heap (brk), the V8 heap's and other anonymous mappings by size class, the files mapped. */
export function memoryMap (pid: number): Record<string, number> | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8')
  } catch {
    return undefined
  }
  const totals: Record<string, number> = {}
  let kind = ''
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head !== null) {
      const name = head[1]!
      kind = name === '' ? 'anonymous' : name.startsWith('[') ? name : 'files'
      continue
    }
    const size = /^Size:\s+(\d+) kB/.exec(line)
    // Anonymous mappings by size: glibc's arenas reserve 64 MB each; big chunks are mapped on their own.
    if (size !== null && kind.startsWith('anonymous')) kind = Number(size[1]) >= 65536 ? 'anonymous 64MB+' : Number(size[1]) >= 1024 ? 'anonymous 1-64MB' : 'anonymous <1MB'
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    if (rss !== null) totals[kind] = (totals[kind] ?? 0) + Number(rss[1]) / 1024
  }
  return Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, Math.round(v * 10) / 10]))
}
