import { ProtocolError, TileswarmError, oneLine } from '../common/errors.ts'
import { freeBuffer } from '../imaging/index.ts'
import type { Channel } from '../protocol/framing.ts'
import type { TileClientMessage, TileServerMessage } from '../protocol/messages.ts'
import { tileCoordinatorWire, type Outgoing } from '../protocol/wire.ts'
import { unpackPixels } from '../protocol/pixels.ts'
import { MAX_HELD_OUTPUTS } from '../protocol/constants.ts'
import type { JobCoordinator, ResultOutcome } from './coordinator.ts'
import { BatchCoordinator } from './batch.ts'
import { shortId, type Log } from '../common/log.ts'

export interface TileSessionOptions {
  /** Silence from a worker for this long ends its session (and its leases). */
  idleTimeoutMs: number
  /** The worker's pixels go zstd-compressed (its link leaves this machine). */
  compressPixels?: boolean
  log?: Log
}

/**
 * Serves one worker's session with one job on this coordinator: join, then
 * claims, results, renewals and releases, each answered with its rid. Claims
 * may be answered late (parked), so replies are not in request order.
 */
export async function serveTileSession (channel: Channel, worker: string, findJob: (jobId: string) => JobCoordinator | BatchCoordinator | undefined, options: TileSessionOptions): Promise<void> {
  const wire = tileCoordinatorWire(channel, worker)
  let job: JobCoordinator | BatchCoordinator | undefined
  let sessionJoined = false
  let failed = false
  const pending = new Set<Promise<void>>()
  /** Leases granted through this session: ending it gives back these, not another session's of the same peer. */
  const granted = new Set<string>()
  /** Contexts every tile shares, sent on this session already (by step), since the job's phases last started over. */
  const sharedSent = new Set<number>()
  let sentRestart = 0
  const reply = async (message: Outgoing<TileServerMessage>, body?: Uint8Array): Promise<void> => {
    if (!channel.isClosed) await wire.send(message, body).catch(() => {})
  }
  try {
    while (!channel.isClosed) {
      const { message: msg, body } = await wire.receive({ timeoutMs: options.idleTimeoutMs })
      if (msg.type === 'join') {
        if (job !== undefined) throw new ProtocolError('joined twice')
        job = findJob(msg.jobId)
        if (job === undefined || !job.isRunning) {
          await reply({ type: 'error', rid: msg.rid, name: 'JobFailedError', message: `no running job ${msg.jobId} here` })
          break
        }
        if (job instanceof BatchCoordinator) {
          if (!sessionJoined) job.joined(worker)
          sessionJoined = true
          await reply({ type: 'batch', rid: msg.rid, ...job.info() })
          continue
        }
        const reserved = job.join(worker, body)
        for (const id of job.reservedLeases(worker)) granted.add(id)
        await reply({ type: 'job', rid: msg.rid, ...job.info() }, reserved)
        continue
      }
      if (job === undefined) throw new ProtocolError(`${msg.type} before join`)
      // Leases are leases, of a tile or of an image.
      if (msg.type === 'renew') {
        await reply({ type: 'renewed', rid: msg.rid, leaseId: msg.leaseId, ok: job.renew(worker, msg.leaseId), leaseMs: job.leases.leaseMs })
        continue
      }
      if (msg.type === 'release') {
        job.release(worker, msg.leaseId)
        await reply({ type: 'released', rid: msg.rid, leaseId: msg.leaseId })
        continue
      }
      if (job instanceof BatchCoordinator) {
        await serveBatchRequest(job, msg, body, { worker, granted, pending, reply, log: options.log, isClosed: () => channel.isClosed })
        continue
      }
      const current = job
      switch (msg.type) {
        case 'claim': {
          const p = current.claim(worker).then(async outcome => {
            if (outcome.kind !== 'grant') return await reply({ type: 'none', rid: msg.rid, reason: outcome.kind })
            const { lease, tile } = outcome.grant
            // Granted after the session ended (a parked claim): nobody will do it.
            if (channel.isClosed) return void current.release(worker, lease.leaseId)
            granted.add(lease.leaseId)
            // The phases started over: the shared contexts sent before are stale.
            if (current.restarts !== sentRestart) {
              sharedSent.clear()
              sentRestart = current.restarts
            }
            const contexts = current.contextsFor(tile.index).filter(c => !c.shared || !sharedSent.has(c.step))
            let pixels
            try {
              pixels = await current.tilePixels(tile, worker, options.compressPixels === true)
            } catch (err) {
              // The input did not decode (the job is failing with the decoder's word), or the job ended meanwhile.
              options.log?.(`job ${current.jobId}: no pixels for tile ${tile.index}: ${oneLine((err as Error).message)}`, 'debug')
              current.release(worker, lease.leaseId)
              return await reply({ type: 'none', rid: msg.rid, reason: current.isRunning ? 'wait' : 'cancelled' })
            }
            // Marked once they go: a grant that failed must not leave a later one without them (one sent twice does no harm).
            for (const c of contexts) if (c.shared) sharedSent.add(c.step)
            const body = contexts.length > 0 ? Buffer.concat([...contexts.map(c => c.data), pixels.body]) : pixels.body
            await reply({ type: 'grant', rid: msg.rid, phase: outcome.grant.phase, tile: tile.index, leaseId: lease.leaseId, leaseMs: current.leases.leaseMs, core: tile.core, haloed: tile.haloed, contexts: contexts.map(c => ({ step: c.step, bytes: c.data.length, shared: c.shared })), pixels: { bytes: pixels.body.length, ...(pixels.encoding !== undefined ? { encoding: pixels.encoding } : {}), ...(pixels.checksum !== undefined ? { checksum: pixels.checksum } : {}) }, ...(current.restarts > 0 ? { restart: current.restarts } : {}) }, body)
          })
          pending.add(p)
          void p.finally(() => pending.delete(p))
          break
        }
        case 'result':
        case 'offer': {
          // A result computed under a lease, or one held from an earlier coordinator: checked and placed alike.
          let pixels = body ?? Buffer.alloc(0)
          let outcome: ResultOutcome
          try {
            // A summary's size varies: it inflates to at most its bound. A result of another phase is answered without it.
            const phase = msg.type === 'result' ? msg.phase : 0
            if (msg.type === 'result' && msg.encoding !== undefined && phase === current.phase) pixels = unpackPixels(pixels, msg.encoding, current.resultBytes(msg.tile), !current.summarising)
            outcome = msg.type === 'result' ? current.result(worker, msg.tile, msg.leaseId, msg.checksum, pixels, phase) : current.offer(worker, msg.tile, msg.checksum, pixels)
          } catch (err) {
            // A body that does not inflate to the tile is a bad result, like one that fails its checksum.
            outcome = { status: 'rejected', reason: oneLine((err as Error).message) }
          }
          // Placed (copied into the output) or refused: either way its bytes are spent.
          freeBuffer(body)
          if (pixels !== body) freeBuffer(pixels)
          if (outcome.status === 'rejected') options.log?.(`job ${current.jobId}: rejected a result ${msg.type === 'offer' ? 'offered by' : 'from'} ${shortId(worker)}: ${outcome.reason}`)
          await reply({ type: 'ack', rid: msg.rid, tile: msg.tile, status: outcome.status, ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}) })
          break
        }
        case 'fail':
          options.log?.(`job ${current.jobId}: ${shortId(worker)} could not compute it: ${oneLine(msg.message)}`, 'warn')
          current.failed(worker, msg.message)
          break
      }
    }
  } catch (err) {
    failed = true
    if (!(err instanceof TileswarmError) || err.name === 'ProtocolError' || err.name === 'LimitExceededError') {
      options.log?.(`tile session with ${shortId(worker)} ended: ${oneLine((err as Error).message)}`, 'warn')
    }
  } finally {
    // A session that ends takes its leases with it: the tiles go back at once.
    for (const id of granted) job?.release(worker, id)
    if (sessionJoined && job instanceof BatchCoordinator) job.left(worker)
    // Ended on purpose (an error reply is on its way): let it reach the worker.
    if (failed) channel.abort(new Error('session over'))
    else await channel.close().catch(() => {})
    await Promise.allSettled([...pending])
  }
}

interface BatchSession {
  worker: string
  granted: Set<string>
  pending: Set<Promise<void>>
  reply: (message: Outgoing<TileServerMessage>, body?: Uint8Array) => Promise<void>
  log?: Log
  isClosed: () => boolean
}

/** One request of a worker's session with a batch: images go out as tasks with their files, and come back encoded. */
async function serveBatchRequest (batch: BatchCoordinator, msg: TileClientMessage, body: Buffer | undefined, s: BatchSession): Promise<void> {
  const { worker, reply } = s
  switch (msg.type) {
    case 'claim': {
      const p = batch.claim(worker).then(async outcome => {
        if (outcome.kind !== 'task') return await reply({ type: 'none', rid: msg.rid, reason: outcome.kind })
        const { lease, task } = outcome
        if (s.isClosed()) return void batch.release(worker, lease.leaseId)
        s.granted.add(lease.leaseId)
        await reply({ type: 'task', rid: msg.rid, tile: lease.tile, leaseId: lease.leaseId, leaseMs: batch.leases.leaseMs, key: task.key, format: task.format }, task.file)
      })
      s.pending.add(p)
      void p.finally(() => s.pending.delete(p))
      return
    }
    case 'result': {
      // The body is the output file, sent on to the client as it is: not freed here.
      if (msg.width === undefined || msg.height === undefined) throw new ProtocolError('a batch\'s output comes with its size')
      const outcome = batch.result(worker, msg.tile, msg.leaseId, msg.checksum, body ?? Buffer.alloc(0), { width: msg.width, height: msg.height }, msg.kept === true)
      if (outcome.status === 'rejected') s.log?.(`batch ${batch.jobId}: rejected an image from ${shortId(worker)}: ${outcome.reason}`, 'warn')
      await reply({ type: 'ack', rid: msg.rid, tile: msg.tile, status: outcome.status, ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}) })
      return
    }
    case 'held': {
      const bytes = body ?? Buffer.alloc(0)
      if (bytes.length % 32 !== 0 || bytes.length > 32 * MAX_HELD_OUTPUTS) throw new ProtocolError(`a list of held outputs of ${bytes.length} bytes`)
      const keys: string[] = []
      for (let at = 0; at < bytes.length; at += 32) keys.push(bytes.subarray(at, at + 32).toString('hex'))
      batch.held(worker, keys)
      return
    }
    case 'fail':
      if (msg.tile === undefined) throw new ProtocolError('a batch\'s failure names its image')
      s.log?.(`batch ${batch.jobId}: ${shortId(worker)} could not ${msg.handOn === true ? 'take on' : 'process'} image ${msg.tile}: ${oneLine(msg.message)}`)
      batch.failed(worker, msg.tile, msg.message, msg.handOn === true)
      return
    default:
      throw new ProtocolError(`a batch has no ${msg.type}`)
  }
}
