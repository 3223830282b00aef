/** Protocol ids, topics and wire limits: one place, units in the names. */
/** The one version of every message, protocol id and topic: peers of another version do not talk. 9: jobs carry their submitter and priority, and can be listed, followed and cancelled. 10: a job in phases resumes from what workers kept of each phase; a submit or batch can ask to strip the input's metadata; identify and hellos say the build and protocol. */
export const PROTOCOL_VERSION = 10
export const SUBMIT_PROTOCOL = `/tileswarm/submit/${PROTOCOL_VERSION}.0.0`
export const TILE_PROTOCOL = `/tileswarm/tile/${PROTOCOL_VERSION}.0.0`
export const JOBS_TOPIC = `tileswarm/jobs/${PROTOCOL_VERSION}`
export const PEERS_TOPIC = `tileswarm/peers/${PROTOCOL_VERSION}`
export const TOPICS = [JOBS_TOPIC, PEERS_TOPIC]
/** What a peer says of the swarm as it sees it: `tileswarm status`. */
export const STATUS_PROTOCOL = `/tileswarm/status/${PROTOCOL_VERSION}.0.0`

/** it-length-prefixed caps a frame at 4 MiB; pixels travel in 1 MiB frames. */
export const BODY_CHUNK_BYTES = 1024 * 1024
export const MAX_FRAME_BYTES = BODY_CHUNK_BYTES + 64 * 1024
/** A channel closing waits for its queued bytes while the remote keeps taking some at least this often. */
export const DRAIN_IDLE_MS = 30_000
/** A header is JSON metadata: ids, counts, rectangles, a short error. */
export const MAX_HEADER_BYTES = 64 * 1024
/** gossipsub drops messages over 4 MiB; ours carry metadata only. */
export const MAX_GOSSIP_BYTES = 16 * 1024
export const MAX_ADDRS = 16
/** Peers a coordinator tells its client of (where to resume), and holders of a job's tiles it names. */
export const MAX_PEERS_TOLD = 32
export const MAX_HOLDERS = 64
export const MAX_ERROR_CHARS = 500
/** Operations in one pipeline, at most. */
export const MAX_PIPELINE_STEPS = 16
/** The longest side an image of a job may have, in pixels. */
export const MAX_IMAGE_SIDE_PX = 1 << 20
/** The formats a job's result may be encoded as. */
export const OUTPUT_FORMATS = ['jpeg', 'png', 'webp', 'tiff', 'avif'] as const
/** An encoder's quality, as a job asks for it. */
export const MIN_QUALITY = 1
export const MAX_QUALITY = 100
/** Whole images' outputs a batch's worker says it holds, at most. */
export const MAX_HELD_OUTPUTS = 4096
/** A coordinator's own summaries handed to a worker to keep, at most, in one answer. */
export const MAX_KEPT_SUMMARIES = 4096
/** Tiles one progress message names as placed, with who computed them (the tile map); more go in the next. At 10 digits each, well inside a header's 64 KiB. */
export const MAX_PLACED_TOLD = 4096
/** Peers and jobs a status names, at most, and peers a scaling view names as started by its hook. */
export const MAX_STATUS_PEERS = 1024
export const MAX_STATUS_JOBS = 1024
/** Jobs ended on a peer that its status names (the last hour's, newest first), at most. */
export const MAX_FINISHED_JOBS = 256
/** An operator's token on the wire (a page's token is 16 to a few dozen characters). */
export const MAX_TOKEN_CHARS = 256
/** An input file's name as a job carries it (for lists only), at most. */
export const MAX_INPUT_NAME_CHARS = 255
/** Scaling decisions a status keeps, newest first, and the peers one names. */
export const MAX_SCALE_DECISIONS = 20
export const MAX_DECISION_PEERS = 64
/** A job's priority, as its submitter asks and its announcements carry it; normal unless said. */
export const PRIORITIES = ['high', 'normal', 'low'] as const
export type Priority = typeof PRIORITIES[number]
export const DEFAULT_PRIORITY: Priority = 'normal'
/** Each worker shares its lanes between jobs (and submitters) in these proportions. */
export const PRIORITY_WEIGHT: Readonly<Record<Priority, number>> = { high: 4, normal: 2, low: 1 }
