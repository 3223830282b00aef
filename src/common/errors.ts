/**
 * One class per condition. Callers branch on `err.name`, never on message text.
 * Every message is one line a user can act on.
 */
export class TileswarmError extends Error {
  static override readonly name: string = 'TileswarmError'
  constructor (message: string) {
    super(message)
    this.name = new.target.name
  }
}

/** An operation parameter is missing, of the wrong type or out of range. */
export class InvalidParameterError extends TileswarmError {
  static override readonly name = 'InvalidParameterError'
}

/** An operation name that is not in the registry. */
export class UnknownOperationError extends TileswarmError {
  static override readonly name = 'UnknownOperationError'
}

/** Input bytes that are not a supported, intact image. */
export class InvalidImageError extends TileswarmError {
  static override readonly name = 'InvalidImageError'
}

/** Input that is valid but over a configured limit (pixels, bytes, tiles...). */
export class LimitExceededError extends TileswarmError {
  static override readonly name = 'LimitExceededError'
}

/** The result cannot be written where the user asked. */
export class OutputError extends TileswarmError {
  static override readonly name = 'OutputError'
}

/** The peer's data dir cannot hold its key, or another peer uses it. */
export class DataDirError extends TileswarmError {
  static override readonly name = 'DataDirError'
}

/** A private swarm's key file that cannot be read or written, or is not a key. */
export class SwarmKeyError extends TileswarmError {
  static override readonly name = 'SwarmKeyError'
}

/** A peer or protocol failure: unreachable, refused, timed out, malformed. */
export class NetworkError extends TileswarmError {
  static override readonly name: string = 'NetworkError'
}

/** The peer that answered at an address is not the one the address names. */
export class WrongPeerError extends NetworkError {
  static override readonly name = 'WrongPeerError'
}

/** The remote side sent something that breaks the protocol. */
export class ProtocolError extends TileswarmError {
  static override readonly name = 'ProtocolError'
}

/** A peer has as many jobs under way as it takes (--max-jobs): another peer may take this one. */
export class PeerBusyError extends TileswarmError {
  static override readonly name = 'PeerBusyError'
}

/** The peer is shutting down: its jobs go on elsewhere. */
export class PeerLeavingError extends TileswarmError {
  static override readonly name = 'PeerLeavingError'
}

/** This client may not submit to that peer (--allow-submit). */
export class SubmitRefusedError extends TileswarmError {
  static override readonly name = 'SubmitRefusedError'
}

/** The job failed at its coordinator; the message is the coordinator's. */
export class JobFailedError extends TileswarmError {
  static override readonly name: string = 'JobFailedError'
}

/** The job was cancelled (`tileswarm cancel`, the dashboard) by its submitter or the operator: it wrote nothing. */
export class JobCancelledError extends JobFailedError {
  static override readonly name = 'JobCancelledError'
}

/** A cancel asked by someone who may not: neither the job's submitter nor the coordinator's operator (its page's token). */
export class CancelRefusedError extends TileswarmError {
  static override readonly name = 'CancelRefusedError'
}

/** No job by that id is known where it was asked for. */
export class UnknownJobError extends TileswarmError {
  static override readonly name = 'UnknownJobError'
}

/** A job's client hung up: the job is cancelled, not failed. */
export class ClientGoneError extends TileswarmError {
  static override readonly name = 'ClientGoneError'
}

/** How one try of a client's work on one peer ended, if not with the result. */
export type TryEnding =
  /** Not reached, or gone before it admitted the job. */
  | { kind: 'unreachable', error: NetworkError }
  /** Full for now (--max-jobs): worth asking again later. */
  | { kind: 'busy', reason: string }
  /** Will not take it: leaving, or this peer's own rules (--allow-submit, its limits), or it failed there. */
  | { kind: 'refused', reason: string }
  /** Gone after admitting it: the job resumes elsewhere. */
  | { kind: 'lost', reason: string }

/** A client's try on one peer is over without the result: the client tries the next peer. Never reaches the user. */
export class TryEndedError extends Error {
  static override readonly name = 'TryEndedError'
  readonly ending: TryEnding
  constructor (ending: TryEnding) {
    super(ending.kind)
    this.name = TryEndedError.name
    this.ending = ending
  }
}

/** Errors that are the user's to fix and need no stack trace. */
export function isUserFacing (err: unknown): err is TileswarmError {
  return err instanceof TileswarmError
}

/** libvips messages span lines; keep the first meaningful one. */
export function oneLine (message: string): string {
  const line = message.split('\n').map(l => l.trim()).find(l => l.length > 0) ?? 'unknown error'
  return line.length > 300 ? line.slice(0, 297) + '...' : line
}
