import type { Hono } from 'hono'
import type { Libp2p } from 'libp2p'
import { CancelRefusedError, UnknownJobError } from '../common/errors.ts'
import { coordinatorAddresses, firstAnswer, runningJob } from '../client/jobs.ts'
import { requestCancel } from '../swarm/status.ts'
import type { SwarmPeer } from '../swarm/peer.ts'
import { refuse } from './refuse.ts'

/**
 * The swarm's jobs for the dashboard: running (with whether this viewer may
 * cancel each) and ended here in the last hour; and cancel. Whoever passed
 * the page's gate is this peer's operator: a job here is cancelled at once;
 * one elsewhere is asked of its coordinator with this page's token, which
 * that peer takes if it has the same (one derived from the swarm key, or an
 * operator's own on every peer).
 */
export function swarmJobRoutes (app: Hono, options: { peer: SwarmPeer, token: string | undefined, client: () => Promise<Libp2p>, swarmKey?: Uint8Array }): void {
  const { peer, token } = options
  app.get('/api/swarm-jobs', async c => {
    const status = await peer.detailedStatus()
    return c.json({
      peerId: status.peerId,
      running: status.jobs.map(j => ({ ...j, cancellable: j.here || token !== undefined })),
      finished: status.finished ?? [],
    })
  })
  app.post('/api/swarm-jobs/:id/cancel', async c => {
    const jobId = c.req.param('id')
    try {
      const coordinator = await cancelSwarmJob(options, jobId)
      return c.json({ jobId, coordinator, cancelled: true })
    } catch (err) {
      if (err instanceof UnknownJobError) return refuse(c, 404, err.name, err.message)
      if (err instanceof CancelRefusedError) return refuse(c, 403, err.name, err.message)
      throw err
    }
  })
}

/** Cancels a job as this peer's operator: here at once, elsewhere with the page's token, or as its submitter where the page's own client node sent it. Returns its coordinator. */
export async function cancelSwarmJob (options: { peer: SwarmPeer, token: string | undefined, client: () => Promise<Libp2p>, swarmKey?: Uint8Array }, jobId: string, by: { submitter?: boolean } = {}): Promise<string> {
  const { peer } = options
  const status = peer.status()
  const { coordinator } = runningJob(status, jobId, `no job ${jobId} is known to this peer`)
  if (coordinator === peer.peerId) peer.submissions.cancel(jobId, { peer: peer.peerId, operator: true })
  else await cancelElsewhere({ ...options, ...(by.submitter === true ? { token: '' } : {}) }, coordinatorAddresses(status, '', coordinator), jobId)
  return coordinator
}

async function cancelElsewhere (options: { token: string | undefined, client: () => Promise<Libp2p>, swarmKey?: Uint8Array }, addrs: string[], jobId: string): Promise<void> {
  if (options.token === undefined) throw new CancelRefusedError(`job ${jobId} runs on another peer, and this page has no token to show it; cancel it on its coordinator's page, or with tileswarm cancel`)
  if (addrs.length === 0) throw new UnknownJobError(`job ${jobId}'s coordinator cannot be reached from here: no address of it is known`)
  const node = await options.client()
  // An empty token: the page's own client node asks as the job's submitter.
  const token = options.token === '' ? undefined : options.token
  await firstAnswer(addrs, async addr => { await requestCancel(node, addr, jobId, { ...(token !== undefined ? { token } : {}), ...(options.swarmKey !== undefined ? { swarmKey: options.swarmKey } : {}) }) })
}
