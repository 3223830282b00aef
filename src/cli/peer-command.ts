import { Command } from 'commander'
import type { CliContext } from './context.ts'
import { fromEnvironment } from './env-options.ts'
import { withPeerFlags, type PeerFlags } from './peer-flags.ts'
import { runPeer } from './peer-run.ts'

/** `tileswarm peer` (the default): every flag may come from its TILESWARM_* variable. */
export function peerCommand (context: CliContext): Command {
  const command: Command = withPeerFlags(new Command('peer')
    .description('run a peer (the default): work on the swarm\'s tiles and coordinate jobs submitted here'))
    .action(async (flags: PeerFlags) => { await runPeer(flags, command, context) })
  return fromEnvironment(command)
}
