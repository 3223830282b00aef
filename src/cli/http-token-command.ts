import { Command } from 'commander'
import { readSwarmKey } from '../net/swarm-key.ts'

/** `tileswarm http-token`: the web page's token a private swarm's peers derive from its key. */
export function httpTokenCommand (): Command {
  return new Command('http-token')
    .description('print the web page\'s token that peers of a private swarm derive from its key (when they serve the page beyond loopback without --http-token)')
    .requiredOption('--swarm-key <file>', 'the swarm\'s key')
    .action(async (flags: { swarmKey: string }) => {
      const { tokenFromSwarmKey } = await import('../web/server.ts')
      process.stdout.write(`${tokenFromSwarmKey(await readSwarmKey(flags.swarmKey))}\n`)
    })
}
