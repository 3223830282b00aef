import { shortId } from '../common/log.ts'
import { sizeText } from '../common/units.ts'
import type { SwarmStatus } from '../protocol/messages.ts'
import { ago, table } from '../swarm/status.ts'

const input = (j: { inputName?: string, inputBytes?: number }): string => [j.inputName, j.inputBytes !== undefined ? sizeText(j.inputBytes) : undefined].filter(x => x !== undefined).join(' ') || '?'

/** Who submitted it: the client's peer id, or the web page of a peer. */
const submitterText = (j: { client?: string, submitter?: string }): string => {
  const who = j.submitter ?? j.client
  if (who === undefined) return '?'
  return who.startsWith('web:') ? `web page of ${shortId(who.slice(4))}` : shortId(who)
}

const percent = (done: number, total: number): string => `${done}/${total}${total > 0 ? ` (${Math.floor(100 * done / total)}%)` : ''}`

/** `tileswarm jobs` as a person reads it: the swarm's running jobs, then those ended on the peer asked in the last hour. */
export function formatJobs (s: SwarmStatus): string {
  const lines: string[] = []
  lines.push(`running: ${s.jobs.length} (as peer ${shortId(s.peerId)} knows them)`)
  if (s.jobs.length > 0) {
    lines.push(...table(['JOB', 'KIND', 'SUBMITTER', 'PRIORITY', 'COORDINATOR', 'INPUT', 'OPERATIONS', 'DONE', 'AGE'], s.jobs.map(j => [
      j.jobId,
      j.kind,
      submitterText(j),
      j.priority ?? '?',
      j.here ? 'here' : shortId(j.coordinator),
      input(j),
      j.ops?.join(',') ?? '?',
      percent(j.done, j.total),
      ago(j.ageS),
    ])))
  }
  const finished = s.finished ?? []
  lines.push('')
  lines.push(`ended here in the last hour: ${finished.length}`)
  if (finished.length > 0) {
    lines.push(...table(['JOB', 'KIND', 'SUBMITTER', 'INPUT', 'OPERATIONS', 'OUTCOME', 'DONE', 'TOOK', 'ENDED'], finished.map(j => [
      j.jobId,
      j.kind,
      shortId(j.client),
      input(j),
      j.ops?.join(',') ?? '?',
      j.outcome,
      percent(j.done, j.total),
      `${(j.ms / 1000).toFixed(1)} s`,
      `${ago(j.endedS)} ago`,
    ])))
  }
  return lines.join('\n')
}
