import { Command } from 'commander'
import { parsePeerAddress } from '../net/address.ts'
import { createClientNode } from '../net/node.ts'
import { readSwarmKey } from '../net/swarm-key.ts'
import { collectList, connectTimeoutOption } from './args.ts'
import type { CliContext } from './context.ts'
import { fromEnvironment } from './env-options.ts'
import { peerOrLocal } from './local-peer.ts'

interface StatusFlags {
  peer?: string[]
  json?: boolean
  swarmKey?: string
  connectTimeoutMs: number
  debug?: boolean
}

/** `tileswarm status`: one peer's view of the swarm; --peer and --swarm-key may come from their TILESWARM_* variables. */
export function statusCommand (context: CliContext): Command {
  return fromEnvironment(new Command('status')
    .description('how one peer sees the swarm: its peers (slots, uptime, work done, last seen) and the jobs it coordinates or has heard of')
    .option('--peer <address>', 'the peer to ask: host:port, host:port/<peer id> or a multiaddr; repeat it, and the first that answers is asked (default: the peer running on this machine)', collectList)
    .option('--json', 'the status as one JSON object')
    .option('--swarm-key <file>', 'the private swarm\'s key (default without --peer: the one the peer on this machine runs with)')
    .addOption(connectTimeoutOption())
    .option('--debug', 'stack traces on errors')
    .action(async (flags: StatusFlags) => {
      context.reporting.debug = flags.debug === true
      context.reporting.json = flags.json === true
      await printStatus(flags)
    }), ['peer', 'swarm-key'])
}

/** Asks the --peer addresses in turn; the first that answers is shown. */
async function printStatus (flags: StatusFlags): Promise<void> {
  const peers = await peerOrLocal(flags)
  for (const addr of peers) parsePeerAddress(addr, '--peer')
  const { fetchStatus, formatStatus } = await import('../swarm/status.ts')
  const swarmKey = flags.swarmKey !== undefined ? await readSwarmKey(flags.swarmKey) : undefined
  const node = await createClientNode({ dialTimeoutMs: flags.connectTimeoutMs, swarmKey })
  try {
    let status: Awaited<ReturnType<typeof fetchStatus>> | undefined
    let firstError: unknown
    for (const addr of peers) {
      try {
        status = await fetchStatus(node, addr, { dialTimeoutMs: flags.connectTimeoutMs, swarmKey, detail: true })
        break
      } catch (err) {
        firstError ??= err
      }
    }
    if (status === undefined) throw firstError
    process.stdout.write((flags.json === true ? JSON.stringify(status, null, 2) : formatStatus(status)) + '\n')
  } finally {
    await node.stop()
  }
}
