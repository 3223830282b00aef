import { TopicValidatorResult, type Message } from '@libp2p/interface'
import { JOBS_TOPIC, MAX_GOSSIP_BYTES, PEERS_TOPIC } from './constants.ts'
import { JobsTopicMessage, PeerHello } from './messages.ts'

export type GossipMessage = { topic: typeof JOBS_TOPIC, msg: JobsTopicMessage, from: string } | { topic: typeof PEERS_TOPIC, msg: PeerHello, from: string }

export type Judged = { verdict: TopicValidatorResult.Accept, message: GossipMessage } | { verdict: TopicValidatorResult.Reject | TopicValidatorResult.Ignore, reason: string }

/**
 * The one place every gossip message is decoded and judged before anything
 * acts on it. A message must be signed, small, well formed, of a known type
 * and version, and speak only for its sender.
 */
export function judgeGossip (message: Message): Judged {
  if (message.type !== 'signed') return { verdict: TopicValidatorResult.Reject, reason: 'unsigned' }
  if (message.data.length > MAX_GOSSIP_BYTES) return { verdict: TopicValidatorResult.Reject, reason: `${message.data.length} bytes` }
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(message.data).toString('utf8'))
  } catch {
    return { verdict: TopicValidatorResult.Reject, reason: 'not JSON' }
  }
  const from = message.from.toString()
  if (message.topic === JOBS_TOPIC) {
    const parsed = JobsTopicMessage.safeParse(json)
    if (!parsed.success) return { verdict: TopicValidatorResult.Reject, reason: parsed.error.issues[0]?.message ?? 'invalid' }
    if (parsed.data.coordinator !== from) return { verdict: TopicValidatorResult.Reject, reason: 'speaks for another peer' }
    return { verdict: TopicValidatorResult.Accept, message: { topic: JOBS_TOPIC, msg: parsed.data, from } }
  }
  if (message.topic === PEERS_TOPIC) {
    const parsed = PeerHello.safeParse(json)
    if (!parsed.success) return { verdict: TopicValidatorResult.Reject, reason: parsed.error.issues[0]?.message ?? 'invalid' }
    if (parsed.data.peerId !== from) return { verdict: TopicValidatorResult.Reject, reason: 'speaks for another peer' }
    return { verdict: TopicValidatorResult.Accept, message: { topic: PEERS_TOPIC, msg: parsed.data, from } }
  }
  return { verdict: TopicValidatorResult.Reject, reason: `unknown topic ${message.topic}` }
}

export function encodeGossip (msg: JobsTopicMessage | PeerHello): Uint8Array {
  return Buffer.from(JSON.stringify(msg))
}
