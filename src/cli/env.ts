/**
 * The environment the CLI reads, in one place. No imports: the entry reads it
 * before it sizes libuv's pool.
 *
 * - `TILESWARM_<FLAG>`: a flag's value (`--data-dir` from TILESWARM_DATA_DIR),
 *   for every flag of the peer command and for `--peer` and `--swarm-key` of
 *   submit and status. A flag given wins; `VAR=` means unset.
 * - `UV_THREADPOOL_SIZE`: libuv's pool, which runs sharp's work. Left as given;
 *   otherwise the entry sets it from --slots (a peer) or the cores (the rest).
 *
 * The scale hooks' own variables (TILESWARM_SCALE_COUNT, ...) are set for the
 * hooks by src/swarm/scaler.ts, not read here.
 */

const FLAG_PREFIX = 'TILESWARM_'

/** The variable a flag may come from: `--max-jobs` (or `max-jobs`) is TILESWARM_MAX_JOBS. */
export function flagVariable (flag: string): string {
  return `${FLAG_PREFIX}${flag.replace(/^--/, '').replace(/[-_]/g, '_').toUpperCase()}`
}

/** A flag's value from its variable, as written there; undefined where it is not set. */
export function flagFromEnvironment (flag: string): string | undefined {
  return process.env[flagVariable(flag)]
}

/** libuv's pool size as set for this process; undefined where libuv takes its own default. */
export function threadPoolSize (): string | undefined {
  return process.env.UV_THREADPOOL_SIZE
}

/** Sizes libuv's pool: heeded only before the pool's first use. */
export function setThreadPoolSize (threads: number): void {
  process.env.UV_THREADPOOL_SIZE = String(threads)
}
