import { readFileSync } from 'node:fs'
import { LIBUV_DEFAULT_THREADS } from '../common/defaults.ts'
import { shortId } from '../common/log.ts'
import { coordinatingSummary } from './coordinating.ts'
import { outwardAddress } from './host-address.ts'
import { threadPoolSize } from './env.ts'
import type { PeerFlags } from './peer-flags.ts'

/** Who may reach a peer: what its flags point to, read, and its web page's token. */
export interface PeerAccess {
  /** A web page is asked for (not --http off). */
  serve: boolean
  swarmKey: Uint8Array | undefined
  allowSubmit: Set<string> | undefined
  allowPriority: Set<string> | 'all' | undefined
  httpToken: string | undefined
  /** The token is the one derived from the swarm key. */
  derived: boolean
}

/** Where the web page is, printed for whoever started the peer. */
export function pageLine (pageUrl: string, { httpToken, derived }: PeerAccess): string {
  // The token goes into the address only on a terminal: a service's output ends up in its journal.
  const token = httpToken === undefined ? '' : process.stdout.isTTY ? `?token=${httpToken}` : ''
  const asks = httpToken === undefined || token !== '' ? '' : derived ? '; it asks for its token: tileswarm http-token --swarm-key <file> prints it' : '; it asks for --http-token'
  // Bound to every address: shown at one another machine can open.
  const url = pageUrl.replace(/^http:\/\/(0\.0\.0\.0|\[::\])/, `http://${outwardAddress() ?? '127.0.0.1'}`)
  return `web page on ${url}${token} (dashboard: ${url}dashboard, metrics: ${url}metrics${asks})\n`
}

/** The log line a started peer says what it runs with in. */
export function upLine (flags: PeerFlags, peerId: string, { swarmKey, allowSubmit }: PeerAccess): string {
  const slots = `${flags.slots} slot${flags.slots === 1 ? '' : 's'} (libuv pool of ${threadPoolSize() ?? LIBUV_DEFAULT_THREADS})`
  return `peer ${peerId} (${shortId(peerId)} in logs) up: ${slots}, ${mallocName()} malloc, ${coordinatingSummary(flags)}${swarmKey !== undefined ? ', private swarm' : ''}${allowSubmit !== undefined ? `, ${allowSubmit.size} peers may submit` : ''}`
}

/** The allocator this process runs on: jemalloc where the `tileswarm` command found it (docs/operating.md, Memory). */
function mallocName (): 'jemalloc' | 'libc' {
  try {
    return /\/libjemalloc[^/\n]*$/m.test(readFileSync('/proc/self/maps', 'utf8')) ? 'jemalloc' : 'libc'
  } catch {
    return 'libc'
  }
}

/** The scale hooks and when they run; `acting`: this peer decides (no other with a hook and a lower id is here). */
export function scalingLine (flags: PeerFlags, acting: boolean): string {
  const out = flags.scaleOut !== undefined ? ` out (${flags.scaleOut}) when the backlog would take over ${flags.scaleOutAfter} s to drain, up to ${flags.scaleMax} peer${flags.scaleMax === 1 ? '' : 's'}${acting ? '' : '; another peer with a scale-out hook and a lower id decides while it is here'};` : ''
  const into = flags.scaleIn !== undefined ? ` in (${flags.scaleIn}) after ${flags.scaleInAfter} s without a backlog;` : ''
  return `scaling:${out}${into} ${flags.scaleCooldown} s between hooks`
}
