import type { Command } from 'commander'
import { NetworkError } from '../common/errors.ts'
import { parsePeerAddress } from '../net/address.ts'
import { loadOrCreateKey } from '../net/identity.ts'
import { createClientNode } from '../net/node.ts'
import { readSwarmKey } from '../net/swarm-key.ts'
import type { JobsConnection } from '../client/jobs.ts'
import { collectList, connectTimeoutOption, once } from './args.ts'
import type { CliContext } from './context.ts'
import { peerOrLocal } from './local-peer.ts'

/** What `jobs`, `watch` and `cancel` share. */
export interface JobsFlags {
  peer?: string[]
  json?: boolean
  swarmKey?: string
  /** cancel's: the identity that submitted the job. */
  dataDir?: string
  connectTimeoutMs: number
  debug?: boolean
}

/** The flags of the commands that list, follow and cancel jobs. */
export function withJobsFlags (command: Command): Command {
  return command
    .option('--peer <address>', 'the peer to ask: host:port, host:port/<peer id> or a multiaddr; repeat it, and the first that answers is asked (default: the peer running on this machine)', collectList)
    .option('--json', 'machine-readable output')
    .option('--swarm-key <file>', 'the private swarm\'s key (default without --peer: the one the peer on this machine runs with)', once('--swarm-key'))
    .addOption(connectTimeoutOption())
    .option('--debug', 'stack traces on errors')
}

/** The reporting set from the flags. */
export function report (context: CliContext, flags: JobsFlags): void {
  context.reporting.debug = flags.debug === true
  context.reporting.json = flags.json === true
}

/**
 * `use` with a client node (with the --data-dir identity, if given) and each
 * --peer address in turn: the first that can be reached answers; any other
 * failure is the answer.
 */
export async function withConnection<T> (flags: JobsFlags, use: (c: JobsConnection) => Promise<T>): Promise<T> {
  const peers = await peerOrLocal(flags)
  for (const addr of peers) parsePeerAddress(addr, '--peer')
  const swarmKey = flags.swarmKey !== undefined ? await readSwarmKey(flags.swarmKey) : undefined
  const privateKey = flags.dataDir !== undefined ? await loadOrCreateKey(flags.dataDir) : undefined
  const node = await createClientNode({ dialTimeoutMs: flags.connectTimeoutMs, swarmKey, privateKey })
  try {
    let firstError: unknown
    for (const peer of peers) {
      try {
        return await use({ node, peer, dialTimeoutMs: flags.connectTimeoutMs, ...(swarmKey !== undefined ? { swarmKey } : {}) })
      } catch (err) {
        if (!(err instanceof NetworkError)) throw err
        firstError ??= err
      }
    }
    throw firstError
  } finally {
    await node.stop()
  }
}
