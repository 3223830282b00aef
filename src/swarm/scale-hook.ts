import { spawn } from 'node:child_process'
import type { Clock } from '../common/clock.ts'
import { oneLine } from '../common/errors.ts'

/** What a hook said, kept for the log and the dashboard. */
const HOOK_OUTPUT_CHARS = 400
/** A hook that exited but holds its pipes open (a peer it left running in the background) is taken as ended this long after. */
const EXIT_CLOSE_WAIT_MS = 1000

/** How a hook ended, what it said (its last lines, or why it failed), all it printed, and how long it ran. */
export interface HookResult { outcome: 'done' | 'failed' | 'timed out', message: string, output: string, ms: number }

/** The last lines someone would look at: the end of what it said, kept whole. */
function lastWords (output: string): string {
  const lines = output.split('\n').map(l => l.trim()).filter(l => l !== '')
  const said = lines.slice(-3).join('; ')
  return said.length > HOOK_OUTPUT_CHARS ? `...${said.slice(-HOOK_OUTPUT_CHARS)}` : said
}

/**
 * `sh -c command` with these variables, killed (its whole process group)
 * past `timeoutMs` or on `kill`. Its output up to its exit comes back, and
 * its last lines as the message. Peers it starts must leave its process
 * group (setsid), or a timeout takes them too.
 */
export function runHook (command: string, env: Record<string, string>, timeoutMs: number, clock: Clock): { done: Promise<HookResult>, kill: () => void } {
  const started = clock.now()
  let killed = false
  let kill = (): void => {}
  const done = new Promise<HookResult>(resolve => {
    let output = ''
    let exited = false
    // Until it exits: a peer it left running in the background may write to its pipes after.
    const keep = (chunk: Buffer): void => { if (!exited) output = (output + chunk.toString()).slice(-16 * HOOK_OUTPUT_CHARS) }
    const child = spawn('/bin/sh', ['-c', command], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    kill = () => {
      killed = true
      try { process.kill(-child.pid!, 'SIGKILL') } catch { child.kill('SIGKILL') }
    }
    const timer = clock.setTimeout(kill, timeoutMs)
    child.on('error', err => {
      clock.clearTimeout(timer)
      resolve({ outcome: 'failed', message: oneLine(err.message), output, ms: clock.now() - started })
    })
    let ended = false
    const end = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (ended) return
      ended = true
      exited = true
      clock.clearTimeout(timer)
      child.stdout.destroy()
      child.stderr.destroy()
      const ms = clock.now() - started
      const said = lastWords(output)
      if (killed) resolve({ outcome: 'timed out', message: `killed after ${(ms / 1000).toFixed(0)} s${ms >= timeoutMs ? ' (--scale-hook-timeout)' : ' (this peer is stopping)'}${said !== '' ? `; it said: ${said}` : ''}`, output, ms })
      else if (code === 0) resolve({ outcome: 'done', message: said, output, ms })
      else resolve({ outcome: 'failed', message: `${code !== null ? `exit status ${code}` : `killed by ${signal}`}${said !== '' ? `: ${said}` : ''}`, output, ms })
    }
    // Its last words come with 'close'; a peer it left running in the background may hold its pipes open, so the exit is enough after a second.
    child.on('close', end)
    child.on('exit', (code, signal) => { clock.setTimeout(() => { end(code, signal) }, EXIT_CLOSE_WAIT_MS) })
  })
  return { done, kill: () => { kill() } }
}
