import { z } from 'zod'
import { MAX_ADDRS, MAX_DECISION_PEERS, MAX_ERROR_CHARS, MAX_HOLDERS, MAX_KEPT_SUMMARIES, MAX_IMAGE_SIDE_PX, MAX_PEERS_TOLD, MAX_PIPELINE_STEPS, MAX_PLACED_TOLD, MAX_QUALITY, MAX_SCALE_DECISIONS, MAX_FINISHED_JOBS, MAX_INPUT_NAME_CHARS, MAX_STATUS_JOBS, MAX_STATUS_PEERS, MAX_TOKEN_CHARS, MIN_QUALITY, OUTPUT_FORMATS, PRIORITIES, PROTOCOL_VERSION } from './constants.ts'

/**
 * Every message on every topic and protocol, as a schema. Nothing is acted on
 * before it has passed here: unknown types, versions and fields are refused.
 */
const id = z.string().min(1).max(128).regex(/^[A-Za-z0-9._-]+$/)
const count = z.number().int().min(0).max(1e9)
const dim = z.number().int().min(1).max(MAX_IMAGE_SIDE_PX)
const rect = z.object({ x: count, y: count, width: dim, height: dim }).strict()
const bodyBytes = z.number().int().min(0).max(2 ** 40)
const rid = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const peerId = z.string().min(10).max(128).regex(/^[1-9A-HJ-NP-Za-km-z]+$/)
const multiaddr = z.string().min(1).max(512)
const opSpec = z.object({ op: z.string().min(1).max(64), params: z.record(z.string().max(64), z.unknown()).optional() }).strict()
const ops = z.array(opSpec).min(1).max(MAX_PIPELINE_STEPS)
const pixelFormat = z.object({ channels: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]), depth: z.union([z.literal(8), z.literal(16)]) }).strict()
const errorText = z.string().max(MAX_ERROR_CHARS)
const outputFormat = z.enum(OUTPUT_FORMATS)
const quality = z.number().int().min(MIN_QUALITY).max(MAX_QUALITY)
/** A job's content identity: sha-256 of its input, pipeline and tile geometry. */
const jobKey = z.string().regex(/^[0-9a-f]{64}$/)
const peerRef = z.object({ peerId, addrs: z.array(multiaddr).max(MAX_ADDRS) }).strict()
const v = z.literal(PROTOCOL_VERSION)
/** An input file's name, shown in job lists: printable, no path. */
const inputName = z.string().min(1).max(MAX_INPUT_NAME_CHARS).regex(/^[^\x00-\x1f\x7f/\\]+$/)
const priority = z.enum(PRIORITIES)
/** Who submitted a job: the client's peer id, or `web:` and the peer whose web page took it. */
const submitter = z.string().max(132).regex(/^(web:)?[1-9A-HJ-NP-Za-km-z]{10,128}$/)

// Gossip: metadata only.
/** `submitter` and `priority`: how workers share their lanes between this job and others (one unnamed submitter, normal, if unsaid). */
export const JobAnnouncement = z.object({
  type: z.literal('announce'), v, jobId: id, jobKey, kind: z.enum(['tiles', 'batch']), coordinator: peerId, addrs: z.array(multiaddr).max(MAX_ADDRS), tiles: count, pending: count, done: count, leaseMs: count,
  submitter: submitter.optional(), priority: priority.optional(),
}).strict()
export const JobFinished = z.object({ type: z.literal('finished'), v, jobId: id, coordinator: peerId, outcome: z.enum(['done', 'failed', 'cancelled']) }).strict()
/**
 * `up`: seconds since the peer started; `done`: tiles and images its worker
 * has computed (the dashboard's view of the swarm); `scaler`: it has a
 * scale-out hook (the lowest such id decides for the swarm); `scaledBy`: the
 * peer whose hook started it (that peer's scale-in may stop it).
 */
/** `version`: the build; `cpu`: the peer's process's CPU since its last hello, in percent of one core; `rssBytes`: its resident memory. */
export const PeerHello = z.object({ type: z.literal('hello'), v, version: z.string().max(32).optional(), peerId, addrs: z.array(multiaddr).max(MAX_ADDRS), slots: count, up: count, done: count, scaler: z.boolean().optional(), scaledBy: peerId.optional(), cpu: z.number().min(0).max(1e6).optional(), rssBytes: bodyBytes.optional() }).strict()
export const JobsTopicMessage = z.discriminatedUnion('type', [JobAnnouncement, JobFinished])
export type JobAnnouncement = z.infer<typeof JobAnnouncement>
export type JobFinished = z.infer<typeof JobFinished>
export type PeerHello = z.infer<typeof PeerHello>
export type JobsTopicMessage = z.infer<typeof JobsTopicMessage>

// Submit protocol. The client says what it wants and how big its upload is;
// the peer admits it (or refuses, before a byte of the image is read); the
// client uploads; the peer reports progress and sends the result.
/** A job resumed after its coordinator was lost: these peers hold tiles it finished; the new coordinator collects them first. */
const holder = z.object({ peerId, addrs: z.array(multiaddr).max(4) }).strict()
const resume = z.object({ from: peerId.optional(), holders: z.array(holder).max(MAX_HOLDERS) }).strict()
/** How much is computed twice: a share (the floor of the adaptive share), every tile, or none; the coordinator's default if unsaid. */
const verifyLevel = z.union([z.enum(['off', 'all']), z.number().min(0).max(1)])
/** What the client hears of the checks: tiles settled by a second computation, disagreements, extra computations, tiles replaced, and peers excluded with their wrong tiles. */
const verifyFigures = z.object({
  checked: count, disagreements: count, extra: count, replaced: count, skipped: count,
  excluded: z.record(peerId, count).refine(r => Object.keys(r).length <= MAX_PEERS_TOLD, `at most ${MAX_PEERS_TOLD} peers excluded are named`),
}).strict()
/** `name`: the input file's name, for job lists (`tileswarm jobs`, the dashboard). `priority`: normal if unsaid (a client sends it only when it is not, so older peers take normal jobs). */
export const SubmitMessage = z.object({
  type: z.literal('submit'), v, ops, format: outputFormat, quality, bytes: bodyBytes, tileSize: dim.optional(), verify: verifyLevel.optional(), resume: resume.optional(), name: inputName.optional(), priority: priority.optional(), strip: z.literal(true).optional(),
}).strict()
export const UploadMessage = z.object({ type: z.literal('upload'), bodyBytes }).strict()
/**
 * A batch: many images, one job. Each image is one task (a worker decodes,
 * processes and encodes it whole); the coordinator asks for images as it has
 * room (`send`), and sends each result as it comes in.
 */
export const BatchMessage = z.object({ type: z.literal('batch'), v, ops, quality, images: z.number().int().min(1).max(1_000_000), resume: resume.optional(), priority: priority.optional(), strip: z.literal(true).optional() }).strict()
/** One image of the batch (the body is its file), numbered by the client from 0; its output format is its own. */
export const BatchImage = z.object({ type: z.literal('image'), index: count, format: outputFormat, bodyBytes }).strict()
export const SubmitClientMessage = z.discriminatedUnion('type', [SubmitMessage, UploadMessage, BatchMessage, BatchImage])
export const SubmitReady = z.object({ type: z.literal('ready') }).strict()
export const SubmitAccepted = z.object({ type: z.literal('accepted'), jobId: id, width: dim, height: dim, tiles: count, phases: count, tileSize: dim, halo: count, notes: z.array(errorText).max(16) }).strict()
/**
 * Tiles done so far; then the coordinator encodes the result, then sends it.
 * `placed`: tiles accepted since the last progress, by the peer that computed
 * them, numbered across phases (phase * tiles + tile): the client's tile map.
 */
export const SubmitProgress = z.object({ type: z.literal('progress'), phase: z.enum(['decoding', 'tiles', 'encoding', 'sending']), done: count, total: count, workers: count, placed: z.record(peerId, z.array(count).max(MAX_PLACED_TOLD)).optional(), verify: verifyFigures.optional() }).strict()
/** Who else is in the swarm (where to resume), and who holds finished tiles of this job (what to recover). */
export const SubmitPeers = z.object({ type: z.literal('peers'), peers: z.array(peerRef).max(MAX_PEERS_TOLD), holders: z.array(holder).max(MAX_HOLDERS) }).strict()
/** A resumed job collected these finished tiles from their holders instead of computing them again. */
/** Of a job in phases, `phase` (0-based) of `phases`. */
export const SubmitRecovered = z.object({ type: z.literal('recovered'), tiles: count, total: count, phase: count.optional(), phases: count.optional() }).strict()
export const SubmitResult = z.object({ type: z.literal('result'), bodyBytes, width: dim, height: dim, tilesByPeer: z.record(peerId, count), leases: z.object({ granted: count, expired: count, released: count, duplicates: count, speculated: count, recovered: count }).strict(), verify: verifyFigures.optional() }).strict()
export const ErrorMessage = z.object({ type: z.literal('error'), name: z.string().max(64), message: errorText, rid: rid.optional() }).strict()
/** The batch is taken on. */
export const BatchStarted = z.object({ type: z.literal('started'), jobId: id, maxUploadBytes: bodyBytes }).strict()
/** Send this many more images (the coordinator holds a bounded window of them). */
export const BatchSend = z.object({ type: z.literal('send'), count: z.number().int().min(1).max(1_000_000) }).strict()
/** An image is done: the body is its output file. `recovered`: a peer had it from an earlier coordinator of the batch. */
export const BatchImageDone = z.object({ type: z.literal('image-done'), index: count, width: dim, height: dim, by: peerId, recovered: z.boolean(), bodyBytes }).strict()
/** An image cannot be done (unreadable, too large, or it failed on the peers that tried); the batch goes on. */
export const BatchImageFailed = z.object({ type: z.literal('image-failed'), index: count, name: z.string().max(64), message: errorText }).strict()
/** Every image is done or failed. */
export const BatchEnd = z.object({ type: z.literal('end'), imagesByPeer: z.record(peerId, count), leases: z.object({ granted: count, expired: count, released: count, duplicates: count, speculated: count, recovered: count }).strict() }).strict()
export const SubmitServerMessage = z.discriminatedUnion('type', [SubmitReady, SubmitAccepted, SubmitProgress, SubmitPeers, SubmitRecovered, SubmitResult, ErrorMessage, BatchStarted, BatchSend, BatchImageDone, BatchImageFailed, BatchEnd])
export type SubmitMessage = z.infer<typeof SubmitMessage>
export type SubmitClientMessage = z.infer<typeof SubmitClientMessage>
export type SubmitServerMessage = z.infer<typeof SubmitServerMessage>
export type SubmitResult = z.infer<typeof SubmitResult>
export type ErrorMessage = z.infer<typeof ErrorMessage>

// Tile protocol: a worker's session with one job's coordinator. Every request
// carries a rid; replies echo it (claims may be answered late).
/**
 * A join's body, if any, is what the worker holds of the job from an earlier
 * coordinator: bitmaps of tiles, one per phase as `held` lays them out (phase
 * and bytes, in order), or phase 0's alone without `held`.
 */
export const JoinRequest = z.object({ type: z.literal('join'), v, rid, jobId: id, held: z.array(z.object({ phase: count, bytes: bodyBytes }).strict()).max(MAX_PIPELINE_STEPS + 1).optional(), bodyBytes: bodyBytes.optional() }).strict()
/** `park: false`: answered at once (none, wait) when no unit is free, not held for the job's park time: the worker has other jobs to go to. */
export const ClaimRequest = z.object({ type: z.literal('claim'), rid, park: z.boolean().optional() }).strict()
/** The checksum is of the raw pixels; the body may be zstd-compressed (`encoding`). */
/** A batch's image: the body is its encoded output (`width` by `height`), `kept` from an earlier coordinator of the batch. */
export const ResultRequest = z.object({ type: z.literal('result'), rid, phase: count, tile: count, leaseId: id, checksum: z.string().regex(/^[0-9a-f]{8}$/), encoding: z.literal('zstd').optional(), kept: z.boolean().optional(), width: dim.optional(), height: dim.optional(), bodyBytes }).strict()
export const RenewRequest = z.object({ type: z.literal('renew'), rid, leaseId: id }).strict()
export const ReleaseRequest = z.object({ type: z.literal('release'), rid, leaseId: id }).strict()
/** A held result, handed to the job's new coordinator: a tile the job info's body reserved for this worker. */
/** `phase`: of a job in phases (0 if absent); `context`: a later phase's result's contexts' digest. */
export const OfferRequest = z.object({ type: z.literal('offer'), rid, phase: count.optional(), tile: count, checksum: z.string().regex(/^[0-9a-f]{8}$/), context: z.string().regex(/^[0-9a-f]{32}$/).optional(), bodyBytes }).strict()
/**
 * This worker could not compute the job (its prelude or a tile threw, not the
 * network): the coordinator fails the job when its own worker says so, or two
 * other peers do. Not answered.
 */
/** `tile`: a batch's image this worker holds could not be processed; `handOn`: it is past this peer's limits or memory, another may manage. */
export const FailRequest = z.object({ type: z.literal('fail'), rid, message: errorText, tile: count.optional(), handOn: z.boolean().optional() }).strict()
/** A batch's worker says, once after it joins, which images' outputs it holds: the body is their task keys, 32 bytes each. Not answered. */
export const HeldRequest = z.object({ type: z.literal('held'), rid, bodyBytes: bodyBytes.optional() }).strict()
export const TileClientMessage = z.discriminatedUnion('type', [JoinRequest, ClaimRequest, ResultRequest, RenewRequest, ReleaseRequest, OfferRequest, FailRequest, HeldRequest])

/** parkMs: how long the coordinator may hold a claim before answering 'wait' (the worker's reply timeout builds on it). */
/** Its body, if any, is a bitmap of the tiles reserved for this worker to offer, of the phase the job is in (`phase`, 0 if absent). */
export const JobInfo = z.object({ type: z.literal('job'), rid, jobId: id, jobKey, ops, width: dim, height: dim, format: pixelFormat, tileSize: dim, halo: count, leaseMs: count, parkMs: count, tiles: count, phases: count, phase: count.optional(), bodyBytes: bodyBytes.optional() }).strict()
/** A batch's session: whole images come as tasks, each with its file. */
export const BatchInfo = z.object({ type: z.literal('batch'), rid, jobId: id, ops, quality, leaseMs: count, parkMs: count, images: count, strip: z.literal(true).optional() }).strict()
/**
 * One image of a batch under lease: the body is its file; the result is the
 * encoded output. `key` names the output (input digest, pipeline, format,
 * quality): a worker that kept it from an earlier coordinator sends it as is.
 */
export const Task = z.object({ type: z.literal('task'), rid, tile: count, leaseId: id, leaseMs: count, key: jobKey, format: outputFormat, bodyBytes }).strict()
/**
 * A tile under lease, in a phase of the job. The body holds the contexts of
 * the global steps before the phase, in order (this tile's own, or one every
 * tile shares, sent once per session), then the tile's haloed pixels as the
 * coordinator decoded them (`pixels`: their bytes on the wire, zstd-compressed
 * or raw, and the checksum of the raw pixels, for a link): the input is
 * decoded once, on the coordinator, whatever the swarm's size.
 */
const stepContext = z.object({ step: count, bytes: bodyBytes, shared: z.boolean() }).strict()
const tilePixels = z.object({ bytes: bodyBytes, encoding: z.literal('zstd').optional(), checksum: z.string().regex(/^[0-9a-f]{8}$/).optional() }).strict()
/** `restart`: how often the job's phases started over (a liar's summaries were reduced): what a worker kept of an earlier start (shared contexts, tiles' memos) is stale. */
export const Grant = z.object({ type: z.literal('grant'), rid, phase: count, tile: count, leaseId: id, leaseMs: count, core: rect, haloed: rect, contexts: z.array(stepContext).max(MAX_PIPELINE_STEPS), pixels: tilePixels, restart: count.optional(), bodyBytes: bodyBytes.optional() }).strict()
/** `excluded`: this peer's results lost a vote: it gets nothing more of the job (however often it is announced). */
export const NoTile = z.object({ type: z.literal('none'), rid, reason: z.enum(['done', 'wait', 'cancelled', 'excluded']) }).strict()
/** A claim's answer in a resumed job's later phase: first offer these tiles held from the earlier coordinator (the body, a bitmap), then claim again. */
export const OfferFirst = z.object({ type: z.literal('offers'), rid, phase: count, bodyBytes }).strict()
/** A claim's answer after a summary phase: keep these summaries the coordinator's own worker made (the body, laid out as `tiles` says), then claim again. */
export const KeepSafe = z.object({ type: z.literal('keep'), rid, phase: count, tiles: z.array(z.object({ tile: count, bytes: bodyBytes, checksum: z.string().regex(/^[0-9a-f]{8}$/), context: z.string().regex(/^[0-9a-f]{32}$/).optional() }).strict()).max(MAX_KEPT_SUMMARIES), bodyBytes }).strict()
export const ResultAck = z.object({ type: z.literal('ack'), rid, tile: count, status: z.enum(['accepted', 'duplicate', 'rejected']), reason: errorText.optional() }).strict()
export const Renewed = z.object({ type: z.literal('renewed'), rid, leaseId: id, ok: z.boolean(), leaseMs: count }).strict()
export const Released = z.object({ type: z.literal('released'), rid, leaseId: id }).strict()
export const TileServerMessage = z.discriminatedUnion('type', [JobInfo, BatchInfo, Task, Grant, NoTile, OfferFirst, KeepSafe, ResultAck, Renewed, Released, ErrorMessage])
export type TileServerMessage = z.infer<typeof TileServerMessage>
export type TileClientMessage = z.infer<typeof TileClientMessage>
export type JobInfo = z.infer<typeof JobInfo>
export type Grant = z.infer<typeof Grant>
export type BatchInfo = z.infer<typeof BatchInfo>
export type Task = z.infer<typeof Task>

// Status protocol: one request, one answer: the swarm as the peer sees it (the body, JSON).
/** `detail`: jobs elsewhere with their coordinators' own figures (the peer asks them; they are not asked for detail in turn). */
export const StatusRequest = z.object({ type: z.literal('status'), v, detail: z.boolean().optional() }).strict()
/** Ends a job this peer coordinates: allowed to the connection that submitted it, or with the operator's token (its web page's). */
export const CancelRequest = z.object({ type: z.literal('cancel'), v, jobId: id, token: z.string().min(1).max(MAX_TOKEN_CHARS).optional() }).strict()
export const StatusClientMessage = z.discriminatedUnion('type', [StatusRequest, CancelRequest])
export const StatusReply = z.object({ type: z.literal('status'), bodyBytes }).strict()
/** The job is cancelled: its leases are released and its client told. */
export const CancelReply = z.object({ type: z.literal('cancelled'), jobId: id }).strict()
export const StatusServerMessage = z.discriminatedUnion('type', [StatusReply, CancelReply, ErrorMessage])
const leaseCounts = z.object({ granted: count, expired: count, released: count }).strict()
/** A job as a peer sees it: one it coordinates (`here`, with its leases), or one another peer announced. */
export const JobView = z.object({
  jobId: id, kind: z.enum(['tiles', 'batch']), coordinator: peerId, here: z.boolean(), phase: z.string().max(32), done: count, total: count, ageS: count,
  byPeer: z.record(peerId, count).optional(), leases: leaseCounts.optional(), client: peerId.optional(), lastHeardS: count.optional(),
  ops: z.array(z.string().max(64)).max(MAX_PIPELINE_STEPS).optional(), inputBytes: bodyBytes.optional(), inputName: inputName.optional(), coordinatorAddrs: z.array(multiaddr).max(MAX_ADDRS).optional(),
  submitter: submitter.optional(), priority: priority.optional(),
}).strict()
/** A job that ended on the peer that coordinated it, in the last hour: how, and how long it ran. */
export const FinishedJobView = z.object({
  jobId: id, kind: z.enum(['tiles', 'batch']), client: peerId, outcome: z.enum(['done', 'failed', 'cancelled']), ms: count, endedS: count, done: count, total: count,
  ops: z.array(z.string().max(64)).max(MAX_PIPELINE_STEPS).optional(), inputBytes: bodyBytes.optional(), inputName: inputName.optional(),
  byPeer: z.record(peerId, count).optional(), submitter: submitter.optional(),
}).strict()
/**
 * Another peer as one sees it: whether it is connected now, seconds since it
 * was last heard from (0: connected), and what its last hello said (slots,
 * uptime and work done as of now; unknown until its first).
 */
export const PeerView = z.object({ peerId, addrs: z.array(multiaddr).max(MAX_ADDRS), connected: z.boolean(), slots: count.optional(), upS: count.optional(), done: count.optional(), scaler: z.boolean().optional(), scaledBy: peerId.optional(), version: z.string().max(32).optional(), cpu: z.number().min(0).max(1e6).optional(), rssBytes: bodyBytes.optional(), lastSeenS: count }).strict()
/** A scaling decision: what the backlog was, what was asked of the hook, and how that went. */
const ScaleDecision = z.object({
  ageS: count, direction: z.enum(['out', 'in']), count, peers: z.array(peerId).max(MAX_DECISION_PEERS).optional(), reason: errorText, outcome: z.enum(['running', 'done', 'failed', 'timed out']), message: errorText.optional(),
}).strict()
/** A peer with scale hooks: the backlog it sees (units, rate, drain time, slots), whether it is the one that acts, the peers its hook started, its recent decisions. */
export const ScalingView = z.object({
  acting: z.boolean(), out: z.boolean(), in: z.boolean(), boundS: count, backlog: count, ratePerS: z.number().min(0).max(1e9).optional(), drainS: z.number().min(0).max(1e12).optional(), slots: count,
  scaledPeers: z.array(peerId).max(MAX_STATUS_PEERS), decisions: z.array(ScaleDecision).max(MAX_SCALE_DECISIONS),
}).strict()
export type ScalingView = z.infer<typeof ScalingView>
export type PeerView = z.infer<typeof PeerView>
/** A peer met that speaks another protocol (its identify said): no jobs are shared with it. */
const OtherVersion = z.object({ peerId, protocol: count, version: z.string().max(32).optional() }).strict()
export const SwarmStatus = z.object({
  v, peerId, addrs: z.array(multiaddr).max(MAX_ADDRS), version: z.string().max(32), protocol: count.optional(), otherVersions: z.array(OtherVersion).max(MAX_STATUS_PEERS).optional(), slots: count, upS: count, done: count, heldLeases: count, activeJobs: count,
  peers: z.array(PeerView).max(MAX_STATUS_PEERS), jobs: z.array(JobView).max(MAX_STATUS_JOBS), scaling: ScalingView.optional(),
  finished: z.array(FinishedJobView).max(MAX_FINISHED_JOBS).optional(),
}).strict()
export type StatusRequest = z.infer<typeof StatusRequest>
export type StatusClientMessage = z.infer<typeof StatusClientMessage>
export type FinishedJobView = z.infer<typeof FinishedJobView>
export type StatusServerMessage = z.infer<typeof StatusServerMessage>
export type JobView = z.infer<typeof JobView>
export type SwarmStatus = z.infer<typeof SwarmStatus>
