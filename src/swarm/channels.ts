import { FramedChannel, type Channel, type ChannelLimits, type Duplex } from '../protocol/framing.ts'

/** Which end of which protocol a channel serves. */
export type ChannelUse = 'tile-client' | 'tile-server' | 'submit-server' | 'status-server'

/**
 * How a peer turns a libp2p stream into a channel. A component like the
 * others: the simulator passes one that wraps the framed channel to inject
 * faults and count traffic.
 */
export type OpenChannel = (stream: Duplex, limits: ChannelLimits, use: ChannelUse) => Channel

export const framedChannel: OpenChannel = (stream, limits) => new FramedChannel(stream, limits)
