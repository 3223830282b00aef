/** What a job's client and log are told, for a tiled job and a batch alike. */
import { MAX_HOLDERS, MAX_PEERS_TOLD } from '../protocol/constants.ts'
import type { SubmitServerMessage } from '../protocol/messages.ts'
import type { Outgoing } from '../protocol/wire.ts'
import { shortId } from '../common/log.ts'
import type { JobHostComponents } from './hosted.ts'
import type { VerifyFigures, VerifyLevel } from '../protocol/verify-level.ts'

/**
 * What a client hears of the swarm: peers where it may resume its job if
 * this one goes, and which of `workers` (peers that delivered results) hold
 * finished work. This peer's own worker's results die with it, unless it
 * stays to hand them over (`withSelf`).
 */
export async function tellPeersMessage (c: Pick<JobHostComponents, 'swarmPeers' | 'peerId' | 'addrs'>, workers: string[], withSelf = false): Promise<Outgoing<Extract<SubmitServerMessage, { type: 'peers' }>>> {
  const known = (await c.swarmPeers(256)).filter(p => p.peerId !== c.peerId)
  const peers = known.slice(0, MAX_PEERS_TOLD)
  peers.sort((a, b) => a.peerId < b.peerId ? -1 : 1)
  const where = new Map([...known.map(p => [p.peerId, p.addrs] as const), [c.peerId, c.addrs()]])
  const holders = workers.filter(p => withSelf || p !== c.peerId).slice(0, MAX_HOLDERS).sort().map(peerId => ({ peerId, addrs: (where.get(peerId) ?? []).slice(0, 4) }))
  return { type: 'peers', peers, holders }
}

/** What makes a peers message news: who is there (not their addresses, which churn) and who holds finished work. */
export function toldKey (message: { peers: Array<{ peerId: string }>, holders: unknown[] }): string {
  return JSON.stringify([message.peers.map(p => p.peerId), message.holders])
}

/** What the client is told of the checks, where there are checks to tell of: the excluded peers named, up to a bound. */
export function verifyTold (figures: VerifyFigures, level: VerifyLevel): { verify?: VerifyFigures } {
  if (level === 'off' && Object.keys(figures.excluded).length === 0) return {}
  return { verify: { ...figures, excluded: Object.fromEntries(Object.entries(figures.excluded).slice(0, MAX_PEERS_TOLD)) } }
}

/** The checks in a line of the job log. */
export function verifySummary (f: VerifyFigures): string {
  const excluded = Object.entries(f.excluded)
  return `${f.checked} tiles checked (${f.extra} extra computations), ${f.disagreements} disagreement${f.disagreements === 1 ? '' : 's'}${f.replaced > 0 ? `, ${f.replaced} tiles replaced` : ''}${f.skipped > 0 ? `, ${f.skipped} taken unchecked (no other peer could check them)` : ''}${excluded.length > 0 ? `; excluded ${excluded.map(([p, n]) => `${shortId(p)} (${n} wrong)`).join(', ')}` : ''}`
}

/** Milliseconds as seconds, for the job log. */
export function sec (ms: number): string {
  return (ms / 1000).toFixed(2)
}
