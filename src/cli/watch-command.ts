import { Command } from 'commander'
import { systemClock } from '../common/clock.ts'
import type { CliContext } from './context.ts'
import { fromEnvironment } from './env-options.ts'
import { report, withConnection, withJobsFlags, type JobsFlags } from './jobs-flags.ts'

/** `tileswarm watch <job>`: one job followed to its end, with submit's progress bar or --json events. */
export function watchCommand (context: CliContext): Command {
  return fromEnvironment(withJobsFlags(new Command('watch')
    .description('follow one job, wherever it was submitted, to its end: progress as submit shows it (a bar, plain lines, or --json events); exits non-zero if the job failed or was cancelled')
    .argument('<job>', 'the job\'s id (tileswarm jobs lists them)'))
    .action(async (jobId: string, flags: JobsFlags) => {
      report(context, flags)
      const { watchJob } = await import('../client/jobs.ts')
      const { progressReporter } = await import('../client/progress.ts')
      const onEvent = progressReporter(flags.json === true ? 'json' : process.stderr.isTTY ? 'tty' : 'plain')
      const ended = await withConnection(flags, async c => await watchJob(c, jobId, { clock: systemClock, onEvent }))
      if (flags.json !== true) process.stdout.write(`job ${jobId}: ${ended.outcome} in ${(ended.ms / 1000).toFixed(2)} s\n`)
    }), ['peer', 'swarm-key'])
}
