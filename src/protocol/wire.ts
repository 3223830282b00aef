import type { z } from 'zod'
import { ProtocolError, TileswarmError, oneLine } from '../common/errors.ts'
import type { Channel, ReceiveOptions } from './framing.ts'
import { StatusClientMessage, StatusServerMessage, SubmitClientMessage, SubmitServerMessage, TileClientMessage, TileServerMessage, type ErrorMessage } from './messages.ts'

/** What a sender writes: the schema's type, less the body length that framing adds. */
export type Outgoing<T> = T extends unknown ? Omit<T, 'bodyBytes'> : never

/** The one parse-or-refuse step: anything that fails its schema is a ProtocolError naming who sent it. */
export function parseOrRefuse<S extends z.ZodTypeAny> (schema: S, value: unknown, from: string): z.infer<S> {
  const parsed = schema.safeParse(value)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  throw new ProtocolError(`malformed message from ${from}: ${issue !== undefined ? `${issue.path.join('.') || 'message'}: ${issue.message}` : 'invalid'}`)
}

/** An error as the wire carries it: ours by name, anything else as an internal error; one line either way. */
export function errorReply (err: unknown): Outgoing<ErrorMessage> {
  const e = err instanceof Error ? err : new Error(String(err))
  return { type: 'error', name: err instanceof TileswarmError ? e.name : 'InternalError', message: oneLine(e.message) }
}

/**
 * A channel that speaks one protocol: what is sent is typed by its schema (a
 * misspelt field fails to compile), what arrives passes its schema before
 * anyone reads it.
 */
export interface Wire<Send, Recv> {
  readonly channel: Channel
  send: (message: Outgoing<Send>, body?: Uint8Array) => Promise<void>
  receive: (options: ReceiveOptions) => Promise<{ message: Recv, body?: Buffer }>
}

function wire<Send, R extends z.ZodTypeAny> (channel: Channel, incoming: R, from: string): Wire<Send, z.infer<R>> {
  return {
    channel,
    send: async (message, body) => { await channel.send(message as Record<string, unknown>, body) },
    receive: async options => {
      const { header, body } = await channel.receive(options)
      return { message: parseOrRefuse(incoming, header, from), ...(body !== undefined ? { body } : {}) }
    },
  }
}

/** The submit protocol, seen from the client and from the peer. */
export const submitClientWire = (channel: Channel): Wire<SubmitClientMessage, SubmitServerMessage> => wire(channel, SubmitServerMessage, 'the coordinator')
export const submitServerWire = (channel: Channel): Wire<SubmitServerMessage, SubmitClientMessage> => wire(channel, SubmitClientMessage, 'the client')
/** The tile protocol, seen from the worker and from the coordinator. */
export const tileWorkerWire = (channel: Channel): Wire<TileClientMessage, TileServerMessage> => wire(channel, TileServerMessage, 'the coordinator')
export const tileCoordinatorWire = (channel: Channel, worker: string): Wire<TileServerMessage, TileClientMessage> => wire(channel, TileClientMessage, `worker ${worker}`)
/** The status protocol, seen from who asks and from the peer. */
export const statusClientWire = (channel: Channel, from: string): Wire<StatusClientMessage, StatusServerMessage> => wire(channel, StatusServerMessage, from)
export const statusServerWire = (channel: Channel, peer: string): Wire<StatusServerMessage, StatusClientMessage> => wire(channel, StatusClientMessage, `peer ${peer}`)
