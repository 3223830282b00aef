import { Command } from 'commander'
import { writeSwarmKey } from '../net/swarm-key.ts'

/** `tileswarm keygen`: a new pre-shared key for a private swarm. */
export function keygenCommand (): Command {
  return new Command('keygen')
    .description('write a new pre-shared key for a private swarm; give the same file to every peer and client')
    .requiredOption('--out <file>', 'where to write it (mode 600)')
    .option('--force', 'replace an existing file')
    .action(async (flags: { out: string, force?: boolean }) => {
      await writeSwarmKey(flags.out, { replace: flags.force === true })
      process.stdout.write(`wrote a swarm key to ${flags.out}; start every peer and submit with --swarm-key ${flags.out}\n`)
    })
}
