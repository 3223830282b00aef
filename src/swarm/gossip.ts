import type { SwarmNode } from '../net/node.ts'
import { oneLine } from '../errors.ts'
import { JOBS_TOPIC, PEERS_TOPIC, TOPICS } from '../protocol/constants.ts'
import { encodeGossip, judgeGossip } from '../protocol/gossip.ts'
import type { JobsTopicMessage, PeerHello } from '../protocol/messages.ts'
import type { Log } from '../log.ts'

export interface GossipHandlers {
  job: (message: JobsTopicMessage) => void
  hello: (message: PeerHello) => void
}

/**
 * The swarm's two topics: every message is judged once, by the validator,
 * before a handler sees it; publishing picks the topic from the message.
 */
export class GossipService {
  private readonly node: SwarmNode
  private readonly log: Log
  private readonly handlers: GossipHandlers
  private readonly verdicts = new WeakMap<object, ReturnType<typeof judgeGossip>>()
  private stopped = false

  constructor (components: { node: SwarmNode, log: Log }, handlers: GossipHandlers) {
    this.node = components.node
    this.log = components.log
    this.handlers = handlers
  }

  private readonly onMessage = (evt: CustomEvent<Parameters<typeof judgeGossip>[0]>): void => {
    // The validator judged it; delivery reuses its verdict.
    const judged = this.verdicts.get(evt.detail) ?? judgeGossip(evt.detail)
    if (judged.verdict !== 'accept') return
    const { message } = judged
    if (message.topic === JOBS_TOPIC) this.handlers.job(message.msg)
    else this.handlers.hello(message.msg)
  }

  start (): void {
    const pubsub = this.node.services.pubsub
    for (const topic of TOPICS) {
      pubsub.topicValidators.set(topic, (_peer, message) => {
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

  stop (): void {
    this.stopped = true
    this.node.services.pubsub.removeEventListener('message', this.onMessage)
  }
}
