/**
 * Every default and limit a peer or client starts with, in one place, units
 * in the names. Flags override the user-facing ones; docs/operating.md lists them.
 */

// Jobs a peer coordinates.
export const MIN_TILE_SIZE = 16
export const MAX_TILE_SIZE = 4096
export const DEFAULT_LEASE_MS = 5000
export const DEFAULT_MAX_JOBS = 4
export const DEFAULT_MAX_TILES = 100_000
/** A decompression bomb is refused from its header, before a pixel is decoded. */
export const DEFAULT_MAX_PIXELS = 300_000_000
/** The largest image file a peer (or --local) reads. */
export const DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024
/** A tile result is at most MAX_TILE_SIZE^2 RGBA 16-bit pixels. */
export const MAX_TILE_BODY_BYTES = MAX_TILE_SIZE * MAX_TILE_SIZE * 8
/** Leases one peer may hold on one job: a claim flood waits. */
export const DEFAULT_MAX_LEASES_PER_PEER = 64
/** How long a claim waits for a tile to come back before it is told to wait; sent to workers in the job info. */
export const DEFAULT_PARK_MS = 500
/** An upload that sends nothing for this long is dropped. */
export const UPLOAD_IDLE_MS = 30_000
/** A job with tiles in the pool is re-announced this often, for peers that joined late. */
export const DEFAULT_ANNOUNCE_MS = 1000
/** The client hears from its coordinator at least this often, even when no tile lands. */
export const PROGRESS_HEARTBEAT_MS = 5000
/** Silence from the coordinator for this long (three missed heartbeats) and the client takes the job elsewhere. */
export const SUBMIT_IDLE_MS = 3 * PROGRESS_HEARTBEAT_MS
/** A resumed job waits this long at most for the peers holding its finished tiles to offer them. */
export const COLLECT_WINDOW_MS = 3000
/** A tile reserved for a holder to hand over stays reserved this long (or a lease, if longer). */
export const OFFER_HOLD_MS = 10_000
/** Offers a worker has in flight at once. */
export const OFFERS_IN_FLIGHT = 16
/** A second copy of a tile is granted once it is held this many times the median tile time, when idle peers have nothing else to do... */
export const SPECULATE_AFTER_MEDIANS = 3
/** ...up to this share of the job's tiles, and once this many tile times are known. */
export const SPECULATE_MAX_SHARE = 0.1
export const SPECULATE_MIN_SAMPLES = 5
/** What a worker keeps of the results it computed, for a later coordinator of the same job. */
export const DEFAULT_RESULT_CACHE_BYTES = 512 * 1024 * 1024
export const DEFAULT_RESULT_CACHE_MS = 10 * 60_000
/** Decoded job inputs a worker holds at once, across the jobs it works on: each is a whole raw image. */
export const DEFAULT_INPUT_MEMORY_BYTES = 2 * 1024 * 1024 * 1024
/** What a worker keeps of a job's summary phase for its next phase (Canny's classified tiles), at most. */
export const TILE_MEMO_BYTES = 256 * 1024 * 1024

// Output.
export const DEFAULT_QUALITY = 90

// The network.
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000
/** Where a peer listens unless told (--listen). */
export const DEFAULT_LISTEN_ADDRESS = '/ip4/0.0.0.0/tcp/4001'
/** Where a peer serves its web page unless told (--http): loopback, so no token is needed. */
export const DEFAULT_HTTP_ADDRESS = '127.0.0.1:8080'
/** A peer says hello this often (jittered 0.5x to 1.5x), so peers learn of each other. */
export const DEFAULT_HELLO_MS = 5000
/** Connections a peer seeks through hellos (bootstrap and job traffic add their own). */
export const DISCOVERY_TARGET_PEERS = 8
/**
 * Gossip one peer may originate: a hello every few seconds, a few
 * announcements a second per job it coordinates. Past this, its messages are
 * ignored until its allowance refills.
 */
export const GOSSIP_PER_SECOND = 50
export const GOSSIP_BURST = 100
/** A peer that has found no other this long after it started says so: a job submitted to it runs on it alone. */
export const ALONE_WARN_MS = 30_000
/** A peer not heard from this long (and not connected) leaves the status view. */
export const PEER_FORGET_MS = 60_000
/** Re-dials of a lost bootstrap or known peer back off from the first to the last, doubling. */
export const REDIAL_FIRST_MS = 1000
export const REDIAL_MAX_MS = 30_000
/** Peers learned from hellos that a peer remembers, to re-dial when it is cut off. */
export const MAX_KNOWN_PEERS = 64
/** Senders whose gossip allowance a peer keeps (the oldest goes past it). */
export const MAX_GOSSIP_SENDERS = 4096
/** gossipsub's heartbeat, which fills the mesh: tests and the simulator set a shorter one. */
export const DEFAULT_HEARTBEAT_MS = 1000
/** Connections being set up (handshakes not yet done) a peer accepts at once. */
export const MAX_INCOMING_PENDING_CONNECTIONS = 64
/** Streams one connection may have open at once, per protocol: a worker's lanes and offers; a client's submissions; status requests. */
export const MAX_INBOUND_TILE_STREAMS = 256
export const MAX_INBOUND_SUBMIT_STREAMS = 8
export const MAX_INBOUND_STATUS_STREAMS = 4
/** A status request not read within this long of its stream opening is dropped. */
export const STATUS_REQUEST_WAIT_MS = 10_000
/** A tile session with nothing said for this long (or three leases, if longer) is ended. */
export const MIN_TILE_SESSION_IDLE_MS = 60_000
/** A stopping peer waits this long at most for its coordinators to take its leases back, and again for its jobs to end and tell their clients. */
export const STOP_WAIT_MS = 2000
/** A coordinator leaving mid-job waits this long at most for the job's next coordinator, to hand it the tiles its own worker finished. */
export const HAND_OVER_WAIT_MS = 10_000

// The worker.
/** Slots a peer may compute with (--slots), and libvips threads for --local (--threads). */
export const MAX_SLOTS = 1024
/** libuv's pool where UV_THREADPOOL_SIZE is not set. */
export const LIBUV_DEFAULT_THREADS = 4
/** A request to a coordinator unanswered this long ends the session. */
export const WORKER_REQUEST_TIMEOUT_MS = 10_000
/** After a 'wait', a lane tries the job again this much later (or when it is re-announced). */
export const WORKER_RETRY_MS = 250

/** A batch's coordinator holds at most this many of its images at once (uploaded, not yet done), and asks for more past this many bytes only as they go. */
export const BATCH_WINDOW_IMAGES = 32
export const BATCH_WINDOW_BYTES = 256 * 1024 * 1024

/** Scale hooks (--scale-*): the drain time that adds peers, the idle time that stops them, how many, how often, how long a hook may run. */
export const DEFAULT_SCALE_OUT_AFTER_S = 30
export const DEFAULT_SCALE_IN_AFTER_S = 300
export const DEFAULT_SCALE_MAX = 4
export const DEFAULT_SCALE_COOLDOWN_S = 60
export const DEFAULT_SCALE_HOOK_TIMEOUT_S = 120

// The client.
/** The largest body a client takes from a coordinator: a result image, or a batch's output. */
export const SUBMIT_MAX_BODY_BYTES = 4 * 1024 * 1024 * 1024
/** Rounds of waiting for a busy swarm (every peer full) before a client gives up; each waits this much longer than the last. */
export const DEFAULT_BUSY_ROUNDS = 3
export const BUSY_ROUND_STEP_MS = 1000
/** A peer that refuses the client's protocol is given this long for its identify to say which version it runs. */
export const VERSION_ASK_MS = 2000
/** A failed dial's address is looked at with a plain connection for this long at most, reading this many bytes. */
export const PROBE_TIMEOUT_MS = 2000
export const PROBE_READ_BYTES = 4096
/** Progress the client tells: a result's download at most this often; plain lines (no terminal) at most this often. */
export const RECEIVING_EVENT_MS = 200
export const PLAIN_PROGRESS_LINE_MS = 1000
/** Rates and times left are shown once this much time has passed (before, they are noise). */
export const RATE_SHOWN_AFTER_MS = 1000
/** `tileswarm watch` asks the job's coordinator how it goes this often (its status view is cheap). */
export const WATCH_POLL_MS = 500

// Jobs listed and cancelled.
/** Jobs ended on a peer are listed (`tileswarm jobs`, the dashboard) this long after they end. */
export const FINISHED_JOBS_KEPT_MS = 60 * 60_000

// The web page.
/** Jobs the page sent are kept for their results this long after they end; ended ones are swept this often. */
export const WEB_JOB_KEEP_MS = 60 * 60_000
export const WEB_JOB_SWEEP_MS = 5 * 60_000
/** The page's results on disk at most (--web-results-mb): past it, the oldest go first, whoever sent them. */
export const DEFAULT_WEB_RESULTS_BYTES = 2048 * 1024 * 1024
/** One client address keeps at most this many ended jobs and this share of the results' budget: past either, its own oldest go. */
export const WEB_JOBS_PER_CLIENT = 64
export const WEB_RESULTS_CLIENT_SHARE = 0.5
/** Ended jobs kept in all, whoever sent them (each holds its events in memory): past it, the oldest go. */
export const WEB_JOBS_KEPT_MAX = 1024
/** A page's request must finish its headers within this long (--web-header-timeout); Node checks at most this often. */
export const DEFAULT_WEB_HEADER_TIMEOUT_MS = 10_000
/** Uploads (the page's and submits over the swarm) must average this much from UPLOAD_GRACE_MS on (--min-upload-kbps, kilobytes a second)... */
export const DEFAULT_MIN_UPLOAD_BYTES_PER_S = 16 * 1024
export const UPLOAD_GRACE_MS = 10_000
/** ...and end within this long (--upload-timeout). */
export const DEFAULT_UPLOAD_TIMEOUT_MS = 15 * 60_000
/** A slow upload's refusal is given this long to reach its client before the stream is cut. */
export const SLOW_CLOSE_MS = 1000
/** How often an upload's pace is checked. */
export const UPLOAD_PACE_CHECK_MS = 1000
/** Events a page job keeps for a page that opens its progress late (a tile map's worth). */
export const WEB_JOB_MAX_EVENTS = 20_000
/** Page jobs running at once on one peer: the swarm's --max-jobs holds the rest of the line. */
export const WEB_MAX_RUNNING_JOBS = 8
/** Uploads read at once (each held whole in memory while it is checked), and files in one upload (a bigger folder goes by the CLI). */
export const WEB_MAX_UPLOADS = 4
/** Of those, one client address holds at most this many: one slow or greedy client cannot close the page to the rest. */
export const WEB_MAX_UPLOADS_PER_CLIENT = 2
export const WEB_MAX_FILES = 10_000
/** An upload's name, as the page shows it and a batch's folder holds it, at most. */
export const WEB_MAX_NAME_CHARS = 100
/** The longer side of the page's previews and tile-map backgrounds, made on the peer. */
export const WEB_THUMB_PX = 512
/** A page batch's images shown before and after (the first done). */
export const WEB_BATCH_PREVIEWS = 12
/** Thumbnails remembered as made (two a job: its input's and its result's). */
export const WEB_THUMBS_KEPT = 2 * WEB_JOBS_KEPT_MAX
/** An ended job's tiles by peer, as its history keeps them: the peers that did most (a status stays within one frame). */
export const FINISHED_BY_PEER_KEPT = 16
/** The dashboard's graphs: a sample of each peer's figures this often, kept this long. */
export const WEB_SAMPLE_MS = 5000
export const WEB_SAMPLES_KEPT_MS = 10 * 60_000
/** Room for the multipart wrapping around an upload's files. */
export const WEB_MULTIPART_SLACK_BYTES = 64 * 1024
