import { TopicValidatorResult } from '@libp2p/interface'
import type { SwarmNode } from '../net/node.ts'
import { oneLine } from '../common/errors.ts'
import { JOBS_TOPIC, PEERS_TOPIC, TOPICS } from '../protocol/constants.ts'
import { encodeGossip, judgeGossip } from '../protocol/gossip.ts'
import type { JobsTopicMessage, PeerHello } from '../protocol/messages.ts'
import { shortId, type Log } from '../common/log.ts'
import type { Clock } from '../common/clock.ts'
import type { Startable } from '../common/startable.ts'
import { GOSSIP_BURST, GOSSIP_PER_SECOND, MAX_GOSSIP_SENDERS } from '../common/defaults.ts'

export interface GossipHandlers {
  job: (message: JobsTopicMessage) => void
  hello: (message: PeerHello) => void
}

/**
 * The swarm's two topics: every message is judged once, by the validator,
 * before a handler sees it; publishing picks the topic from the message.
 */
export class GossipService implements Startable {
  private readonly node: SwarmNode
  private readonly log: Log
  private readonly handlers: GossipHandlers
  private readonly verdicts = new WeakMap<object, ReturnType<typeof judgeGossip>>()
  private readonly clock: Clock
  /** Each sender's allowance (a token bucket), and whether its flood has been logged. */
  private readonly allowance = new Map<string, { tokens: number, at: number, told: boolean }>()
  private stopped = false

  constructor (components: { node: SwarmNode, log: Log, clock: Clock }, handlers: GossipHandlers) {
    this.node = components.node
    this.log = components.log
    this.clock = components.clock
    this.handlers = handlers
  }

  /**
   * A sender past its rate has its messages ignored (not passed on, not
   * penalised: a peer relaying a flood is not the flooder), and is named once.
   */
  private withinRate (from: string): boolean {
    const now = this.clock.now()
    const a = this.allowance.get(from) ?? { tokens: GOSSIP_BURST, at: now, told: false }
    a.tokens = Math.min(GOSSIP_BURST, a.tokens + (now - a.at) / 1000 * GOSSIP_PER_SECOND)
    a.at = now
    this.allowance.set(from, a)
    if (this.allowance.size > MAX_GOSSIP_SENDERS) this.allowance.delete(this.allowance.keys().next().value!)
    if (a.tokens >= 1) {
      // Calm again (its whole allowance back): a later flood is named again.
      if (a.tokens >= GOSSIP_BURST) a.told = false
      a.tokens -= 1
      return true
    }
    if (!a.told) this.log(`ignoring gossip from ${shortId(from)}: over ${GOSSIP_PER_SECOND} messages a second`, 'warn')
    a.told = true
    return false
  }

  private readonly onMessage = (evt: CustomEvent<Parameters<typeof judgeGossip>[0]>): void => {
    // The validator judged it; delivery reuses its verdict.
    const judged = this.verdicts.get(evt.detail) ?? judgeGossip(evt.detail)
    if (judged.verdict !== 'accept') return
    const { message } = judged
    if (message.topic === JOBS_TOPIC) this.handlers.job(message.msg)
    else this.handlers.hello(message.msg)
  }

  async start (): Promise<void> {
    const pubsub = this.node.services.pubsub
    for (const topic of TOPICS) {
      pubsub.topicValidators.set(topic, (_peer, message) => {
        if (message.type === 'signed' && !this.withinRate(message.from.toString())) return TopicValidatorResult.Ignore
        const judged = judgeGossip(message)
        this.verdicts.set(message, judged)
        if (judged.verdict !== 'accept') this.log(`ignored a gossip message on ${topic}: ${judged.reason}`, 'warn')
        return judged.verdict
      })
      pubsub.subscribe(topic)
    }
    pubsub.addEventListener('message', this.onMessage)
  }

  /** Peers in the swarm this one hears from now (subscribed to the jobs topic): a client is not one. */
  swarmPeers (): number {
    return this.node.services.pubsub.getSubscribers(JOBS_TOPIC).length
  }

  async publish (message: JobsTopicMessage | PeerHello): Promise<void> {
    const topic = message.type === 'hello' ? PEERS_TOPIC : JOBS_TOPIC
    try {
      await this.node.services.pubsub.publish(topic, encodeGossip(message))
    } catch (err) {
      if (!this.stopped) this.log(`gossip on ${topic} failed: ${oneLine((err as Error).message)}`, 'warn')
    }
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.node.services.pubsub.removeEventListener('message', this.onMessage)
  }
}
