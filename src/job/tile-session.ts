import { ProtocolError, TileswarmError, oneLine } from '../common/errors.ts'
import { freeBuffer } from '../imaging/index.ts'
import type { Channel } from '../protocol/framing.ts'
import type { TileClientMessage, TileServerMessage } from '../protocol/messages.ts'
import { tileCoordinatorWire, type Outgoing } from '../protocol/wire.ts'
import { unpackPixels } from '../protocol/pixels.ts'
import { MAX_HELD_OUTPUTS } from '../protocol/constants.ts'
import type { JobCoordinator } from './coordinator.ts'
import type { ClaimOutcome, GrantedTile } from './tiled-job.ts'
import { BatchCoordinator } from './batch.ts'
import type { TileContext } from './job-phases.ts'
import type { TilePixelsOut } from './tile-pixels.ts'
import type { ResultOutcome } from './unit-coordinator.ts'
import { shortId, type Log } from '../common/log.ts'

export interface TileSessionOptions {
  /** Silence from a worker for this long ends its session (and its leases). */
  idleTimeoutMs: number
  /** The worker's pixels go zstd-compressed (its link leaves this machine). */
  compressPixels?: boolean
  log?: Log
}

/** One worker's session, as its requests are served. */
interface Session {
  worker: string
  /** Leases granted through this session: ending it gives back these, not another session's of the same peer. */
  granted: Set<string>
  /** Claims answered late (parked): the session waits for them before it ends. */
  pending: Set<Promise<void>>
  reply: (message: Outgoing<TileServerMessage>, body?: Uint8Array) => Promise<void>
  isClosed: () => boolean
  options: TileSessionOptions
}

/** What a tiled job's session remembers of the contexts it sent. */
interface JobSession extends Session {
  /** Contexts every tile shares, sent on this session already (by step), since the job's phases last started over. */
  sharedSent: Set<number>
  sentRestart: number
}

type Coordinator = JobCoordinator | BatchCoordinator

/**
 * Serves one worker's session with one job on this coordinator: join, then
 * claims, results, renewals and releases, each answered with its rid. Claims
 * may be answered late (parked), so replies are not in request order.
 */
export async function serveTileSession (channel: Channel, worker: string, findJob: (jobId: string) => Coordinator | undefined, options: TileSessionOptions): Promise<void> {
  const wire = tileCoordinatorWire(channel, worker)
  const s: JobSession = {
    worker,
    granted: new Set(),
    pending: new Set(),
    reply: async (message, body) => { if (!channel.isClosed) await wire.send(message, body).catch(() => {}) },
    isClosed: () => channel.isClosed,
    options,
    sharedSent: new Set(),
    sentRestart: 0,
  }
  let job: Coordinator | undefined
  let failed = false
  try {
    while (!channel.isClosed) {
      const { message: msg, body } = await wire.receive({ timeoutMs: options.idleTimeoutMs })
      if (msg.type === 'join') {
        if (job !== undefined) throw new ProtocolError('joined twice')
        job = await join(findJob(msg.jobId), msg, body, s)
        if (job === undefined) break
        continue
      }
      if (job === undefined) throw new ProtocolError(`${msg.type} before join`)
      if (await serveLeaseRequest(job, msg, s)) continue
      if (job instanceof BatchCoordinator) await serveBatchRequest(job, msg, body, s)
      else await serveJobRequest(job, msg, body, s)
    }
  } catch (err) {
    failed = true
    if (!(err instanceof TileswarmError) || err.name === 'ProtocolError' || err.name === 'LimitExceededError') {
      options.log?.(`tile session with ${shortId(worker)} ended: ${oneLine((err as Error).message)}`, 'warn')
    }
  } finally {
    // A session that ends takes its leases with it: the tiles go back at once.
    for (const id of s.granted) job?.release(worker, id)
    job?.left(worker)
    // Ended on purpose (an error reply is on its way): let it reach the worker.
    if (failed) channel.abort(new Error('session over'))
    else await channel.close().catch(() => {})
    await Promise.allSettled([...s.pending])
  }
}

/** The worker joins `job`: it hears what it needs of it, or why not (undefined: the session ends). */
async function join (job: Coordinator | undefined, msg: Extract<TileClientMessage, { type: 'join' }>, body: Buffer | undefined, s: Session): Promise<Coordinator | undefined> {
  if (job === undefined || !job.isRunning) {
    await s.reply({ type: 'error', rid: msg.rid, name: 'JobFailedError', message: `no running job ${msg.jobId} here` })
    return undefined
  }
  if (job instanceof BatchCoordinator) {
    job.joined(s.worker)
    await s.reply({ type: 'batch', rid: msg.rid, ...job.info() })
    return job
  }
  const reserved = job.join(s.worker, heldOf(msg, body))
  for (const id of job.reservedLeases(s.worker)) s.granted.add(id)
  await s.reply({ type: 'job', rid: msg.rid, ...job.info(), ...(reserved !== undefined && reserved.phase > 0 ? { phase: reserved.phase } : {}) }, reserved?.tiles)
  return job
}

/** What a joining worker holds, by phase, as its join lays it out. */
function heldOf (msg: Extract<TileClientMessage, { type: 'join' }>, body: Buffer | undefined): Map<number, Uint8Array> | undefined {
  if (body === undefined) return undefined
  if (msg.held === undefined) return new Map([[0, body]])
  const held = new Map<number, Uint8Array>()
  let at = 0
  for (const { phase, bytes } of msg.held) {
    if (held.has(phase) || at + bytes > body.length) throw new ProtocolError('a join\'s held tiles do not fit its body')
    held.set(phase, body.subarray(at, at + bytes))
    at += bytes
  }
  return held
}

/** Leases are leases, of a tile or of an image: a renewal or a release is answered alike. False if `msg` is neither. */
async function serveLeaseRequest (job: Coordinator, msg: TileClientMessage, s: Session): Promise<boolean> {
  if (msg.type === 'renew') {
    await s.reply({ type: 'renewed', rid: msg.rid, leaseId: msg.leaseId, ok: job.renew(s.worker, msg.leaseId), leaseMs: job.leases.leaseMs })
    return true
  }
  if (msg.type === 'release') {
    job.release(s.worker, msg.leaseId)
    await s.reply({ type: 'released', rid: msg.rid, leaseId: msg.leaseId })
    return true
  }
  return false
}

/** A reply that may come late (a parked claim): the session waits for it before it ends. */
function track (s: Session, reply: Promise<void>): void {
  s.pending.add(reply)
  void reply.finally(() => s.pending.delete(reply))
}

/** One request of a worker's session with a tiled job: tiles go out with their pixels and contexts, and come back computed. */
async function serveJobRequest (job: JobCoordinator, msg: TileClientMessage, body: Buffer | undefined, s: JobSession): Promise<void> {
  switch (msg.type) {
    case 'claim':
      track(s, job.claim(s.worker, { park: msg.park !== false }).then(async outcome => { await grant(job, msg.rid, outcome, s) }))
      return
    case 'result':
    case 'offer':
      await takeResult(job, msg, body, s)
      return
    case 'fail':
      s.options.log?.(`job ${job.jobId}: ${shortId(s.worker)} could not compute it: ${oneLine(msg.message)}`, 'warn')
      job.failed(s.worker, msg.message)
  }
}

/** A claim's answer: a tile with its contexts and pixels, or why none. */
async function grant (job: JobCoordinator, rid: number, outcome: ClaimOutcome, s: JobSession): Promise<void> {
  if (outcome.kind === 'offers') {
    // Reserved as the phase started: the session's, released with it.
    for (const id of job.reservedLeases(s.worker)) s.granted.add(id)
    return await s.reply({ type: 'offers', rid, phase: outcome.offer.phase }, outcome.offer.tiles)
  }
  if (outcome.kind === 'keep') {
    const { phase, tiles } = outcome.keep
    return await s.reply({ type: 'keep', rid, phase, tiles: tiles.map(({ tile, data, checksum, context }) => ({ tile, bytes: data.length, checksum, ...(context !== undefined ? { context } : {}) })) }, Buffer.concat(tiles.map(t => t.data)))
  }
  if (outcome.kind !== 'grant') return await s.reply({ type: 'none', rid, reason: outcome.kind })
  const { lease, tile } = outcome.grant
  // Granted after the session ended (a parked claim): nobody will do it.
  if (s.isClosed()) return void job.release(s.worker, lease.leaseId)
  s.granted.add(lease.leaseId)
  // The phases started over: the shared contexts sent before are stale.
  if (job.restarts !== s.sentRestart) {
    s.sharedSent.clear()
    s.sentRestart = job.restarts
  }
  const contexts = job.contextsFor(tile.index).filter(c => !c.shared || !s.sharedSent.has(c.step))
  let pixels: TilePixelsOut
  try {
    pixels = await job.tilePixels(tile, s.worker, s.options.compressPixels === true)
  } catch (err) {
    // The input did not decode (the job is failing with the decoder's word), or the job ended meanwhile.
    s.options.log?.(`job ${job.jobId}: no pixels for tile ${tile.index}: ${oneLine((err as Error).message)}`, 'debug')
    job.release(s.worker, lease.leaseId)
    return await s.reply({ type: 'none', rid, reason: job.isRunning ? 'wait' : 'cancelled' })
  }
  // Marked once they go: a grant that failed must not leave a later one without them (one sent twice does no harm).
  for (const c of contexts) if (c.shared) s.sharedSent.add(c.step)
  const body = contexts.length > 0 ? Buffer.concat([...contexts.map(c => c.data), pixels.body]) : pixels.body
  await s.reply(grantMessage(job, rid, outcome.grant, contexts, pixels), body)
}

/** The grant's header: the tile, its lease, and how its body is laid out (the contexts, then the pixels). */
function grantMessage (job: JobCoordinator, rid: number, granted: GrantedTile, contexts: TileContext[], pixels: TilePixelsOut): Outgoing<TileServerMessage> {
  const { lease, tile, phase } = granted
  return {
    type: 'grant',
    rid,
    phase,
    tile: tile.index,
    leaseId: lease.leaseId,
    leaseMs: job.leases.leaseMs,
    core: tile.core,
    haloed: tile.haloed,
    contexts: contexts.map(c => ({ step: c.step, bytes: c.data.length, shared: c.shared })),
    pixels: { bytes: pixels.body.length, ...(pixels.encoding !== undefined ? { encoding: pixels.encoding } : {}), ...(pixels.checksum !== undefined ? { checksum: pixels.checksum } : {}) },
    ...(job.restarts > 0 ? { restart: job.restarts } : {}),
  }
}

/** A result computed under a lease, or one held from an earlier coordinator: checked and placed alike, and acknowledged. */
async function takeResult (job: JobCoordinator, msg: Extract<TileClientMessage, { type: 'result' | 'offer' }>, body: Buffer | undefined, s: Session): Promise<void> {
  let pixels = body ?? Buffer.alloc(0)
  let outcome: ResultOutcome
  try {
    // A summary's size varies: it inflates to at most its bound. A result of another phase is answered without it.
    const phase = msg.type === 'result' ? msg.phase : 0
    if (msg.type === 'result' && msg.encoding !== undefined && phase === job.phase) pixels = unpackPixels(pixels, msg.encoding, job.resultBytes(msg.tile), !job.summarising)
    outcome = msg.type === 'result' ? job.result(s.worker, msg.tile, msg.leaseId, msg.checksum, pixels, phase) : job.offer(s.worker, msg.tile, msg.checksum, pixels, { ...(msg.phase !== undefined ? { phase: msg.phase } : {}), ...(msg.context !== undefined ? { context: msg.context } : {}) })
  } catch (err) {
    // A body that does not inflate to the tile is a bad result, like one that fails its checksum.
    outcome = { status: 'rejected', reason: oneLine((err as Error).message) }
  }
  // Placed (copied into the output) or refused: either way its bytes are spent.
  freeBuffer(body)
  if (pixels !== body) freeBuffer(pixels)
  if (outcome.status === 'rejected') s.options.log?.(`job ${job.jobId}: rejected a result ${msg.type === 'offer' ? 'offered by' : 'from'} ${shortId(s.worker)}: ${outcome.reason}`)
  await s.reply(ackMessage(msg.rid, msg.tile, outcome))
}

function ackMessage (rid: number, tile: number, outcome: ResultOutcome): Outgoing<TileServerMessage> {
  return { type: 'ack', rid, tile, status: outcome.status, ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}) }
}

/** One request of a worker's session with a batch: images go out as tasks with their files, and come back encoded. */
async function serveBatchRequest (batch: BatchCoordinator, msg: TileClientMessage, body: Buffer | undefined, s: Session): Promise<void> {
  const { worker, reply } = s
  switch (msg.type) {
    case 'claim':
      track(s, batch.claim(worker, { park: msg.park !== false }).then(async outcome => {
        if (outcome.kind !== 'task') return await reply({ type: 'none', rid: msg.rid, reason: outcome.kind })
        const { lease, task } = outcome
        if (s.isClosed()) return void batch.release(worker, lease.leaseId)
        s.granted.add(lease.leaseId)
        await reply({ type: 'task', rid: msg.rid, tile: lease.tile, leaseId: lease.leaseId, leaseMs: batch.leases.leaseMs, key: task.key, format: task.format }, task.file)
      }))
      return
    case 'result': {
      // The body is the output file, sent on to the client as it is: not freed here.
      if (msg.width === undefined || msg.height === undefined) throw new ProtocolError('a batch\'s output comes with its size')
      const outcome = batch.result(worker, msg.tile, msg.leaseId, msg.checksum, body ?? Buffer.alloc(0), { width: msg.width, height: msg.height, kept: msg.kept === true })
      if (outcome.status === 'rejected') s.options.log?.(`batch ${batch.jobId}: rejected an image from ${shortId(worker)}: ${outcome.reason}`, 'warn')
      await reply(ackMessage(msg.rid, msg.tile, outcome))
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
      s.options.log?.(`batch ${batch.jobId}: ${shortId(worker)} could not ${msg.handOn === true ? 'take on' : 'process'} image ${msg.tile}: ${oneLine(msg.message)}`)
      batch.failed(worker, msg.tile, msg.message, { handOn: msg.handOn === true })
      return
    default:
      throw new ProtocolError(`a batch has no ${msg.type}`)
  }
}
