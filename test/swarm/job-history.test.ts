import test from 'ava'
import { FINISHED_JOBS_KEPT_MS } from '../../src/common/defaults.ts'
import type { HostedJob } from '../../src/job/hosted.ts'
import { MAX_FINISHED_JOBS } from '../../src/protocol/constants.ts'
import { FinishedJobView } from '../../src/protocol/messages.ts'
import { JobHistory } from '../../src/swarm/job-history.ts'
import { manualClock } from '../helpers/clock.ts'

const CLIENT = '12D3KooWQ2EbFm7vKxd3y1Q2EbFm7vKxd3y1Q2EbFm7vKxd3'

function job (jobId: string): HostedJob {
  return { jobId, kind: 'tiles', client: CLIENT, submitter: CLIENT, priority: 'normal', ops: ['blur'], startedAt: 0, phase: 'tiles', done: 3, total: 10, byPeer: { [CLIENT]: 3 }, pending: 0, leases: { granted: 3, expired: 0, released: 0 }, bytesIn: 1234, bytesOut: 0, verify: { checked: 0, disagreements: 0, extra: 0, excluded: 0 } }
}

test('the jobs ended on a peer: newest first, with outcome and time, tiles by peer and submitter, kept an hour and no more than a status names', t => {
  const clock = manualClock()
  const history = new JobHistory({ clock })
  history.add(job('a'), 'done', 1500.4)
  clock.advance(2000)
  history.add(job('b'), 'cancelled', 800)
  const view = history.view()
  t.deepEqual(view.map(j => j.jobId), ['b', 'a'])
  t.deepEqual(view[1], { jobId: 'a', kind: 'tiles', client: CLIENT, outcome: 'done', ms: 1500, endedS: 2, done: 3, total: 10, ops: ['blur'], inputBytes: 1234, byPeer: { [CLIENT]: 3 }, submitter: CLIENT })
  for (const v of view) t.notThrows(() => FinishedJobView.parse(v), 'what the status protocol carries')
  clock.advance(FINISHED_JOBS_KEPT_MS - 1000)
  t.deepEqual(history.view().map(j => j.jobId), ['b'], 'past an hour, gone')
  for (let i = 0; i < MAX_FINISHED_JOBS + 5; i++) history.add(job(`j${i}`), 'failed', 1)
  t.is(history.view().length, MAX_FINISHED_JOBS)
  t.is(history.view().at(-1)!.jobId, 'j5', 'the oldest go first')
})
