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
    const report = { startRssMb: start.rssMb, peakRssMb: this.peakMb, endRssMb: end.rssMb, ratio: Math.round(ratio * 100) / 100, startFds: start.fds, endFds: end.fds, restarts: this.restarts, startHeap: this.startHeap, endHeap: this.endHeap }
    return { report, failures }
  }
}
