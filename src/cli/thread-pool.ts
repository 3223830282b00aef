import { availableParallelism } from 'node:os'
import { LIBUV_DEFAULT_THREADS, MAX_SLOTS } from '../common/defaults.ts'
import { runsDefaultCommand } from './commands.ts'
import { flagFromEnvironment, setThreadPoolSize, threadPoolSize } from './env.ts'

/** A peer's thread beyond its slots: for the jobs it coordinates. */
const COORDINATOR_THREADS = 1

/** Threads beyond the cores for the commands that are not a peer: room for file reads and writes beside sharp's work. */
const FILE_THREADS = 2

/**
 * libuv's pool runs sharp's work, one pass per pool thread. A peer gets one
 * thread per --slots for its worker's passes (its gate lets in one a slot)
 * and one more for the passes of the jobs it coordinates (their decode and
 * encode, on every job's path), which then never queue behind its worker's.
 * Other commands get a thread per core and room for files.
 * A size given in UV_THREADPOOL_SIZE is kept. Call before the pool's first use.
 */
export function sizeThreadPool (args: readonly string[]): void {
  if (threadPoolSize() !== undefined) return
  const slots = slotsOf(args)
  // A bad --slots is the CLI's to report; the pool just takes the default.
  const valid = Number.isInteger(slots) && slots >= 1 && slots <= MAX_SLOTS
  setThreadPoolSize(runsDefaultCommand(args) && valid ? slots + COORDINATOR_THREADS : Math.max(LIBUV_DEFAULT_THREADS, availableParallelism() + FILE_THREADS))
}

/** --slots as the CLI reads it: the flag (either spelling), else TILESWARM_SLOTS, else a slot per core. */
function slotsOf (args: readonly string[]): number {
  const at = args.findIndex(a => a === '--slots' || a.startsWith('--slots='))
  if (at >= 0) return Number(args[at]!.includes('=') ? args[at]!.split('=')[1] : args[at + 1])
  const variable = flagFromEnvironment('--slots')
  return variable !== undefined ? Number(variable) : availableParallelism()
}
