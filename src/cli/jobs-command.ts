import { Command } from 'commander'
import type { CliContext } from './context.ts'
import { fromEnvironment } from './env-options.ts'
import { report, withConnection, withJobsFlags, type JobsFlags } from './jobs-flags.ts'

/** `tileswarm jobs`: the swarm's running jobs as one peer knows them, and those ended there in the last hour. */
export function jobsCommand (context: CliContext): Command {
  return fromEnvironment(withJobsFlags(new Command('jobs')
    .description('the swarm\'s running jobs as one peer knows them (id, submitter, priority, input, operations, progress, age), and those that ended on that peer in the last hour (outcome, duration)'))
    .action(async (flags: JobsFlags) => {
      report(context, flags)
      const { listJobs } = await import('../client/jobs.ts')
      const { formatJobs } = await import('../client/jobs-format.ts')
      const status = await withConnection(flags, listJobs)
      const out = flags.json === true ? JSON.stringify({ peerId: status.peerId, running: status.jobs, finished: status.finished ?? [] }, null, 2) : formatJobs(status)
      process.stdout.write(out + '\n')
    }), ['peer', 'swarm-key'])
}
