import { Command } from 'commander'
import { shortId } from '../common/log.ts'
import { once } from './args.ts'
import type { CliContext } from './context.ts'
import { fromEnvironment } from './env-options.ts'
import { report, withConnection, withJobsFlags, type JobsFlags } from './jobs-flags.ts'

interface CancelFlags extends JobsFlags { httpToken?: string }

/** `tileswarm cancel <job>`: its coordinator ends it, for its submitter or the operator. */
export function cancelCommand (context: CliContext): Command {
  return fromEnvironment(withJobsFlags(new Command('cancel')
    .description('cancel a job: its coordinator ends it and releases its leases, and its client hears it was cancelled. Allowed to its submitter (the identity that submitted it: give the same --data-dir as submit did) and to the coordinator\'s operator (--http-token)')
    .argument('<job>', 'the job\'s id (tileswarm jobs lists them)'))
    .option('--data-dir <dir>', 'this client\'s identity, as submit --data-dir kept it: the submitter of a job may cancel it', once('--data-dir'))
    .option('--http-token <token>', 'the coordinating peer\'s web page token: cancels as its operator', once('--http-token'))
    .action(async (jobId: string, flags: CancelFlags) => {
      report(context, flags)
      const { cancelJob } = await import('../client/jobs.ts')
      const { coordinator } = await withConnection(flags, async c => await cancelJob(c, jobId, { ...(flags.httpToken !== undefined ? { token: flags.httpToken } : {}) }))
      process.stdout.write(flags.json === true ? JSON.stringify({ event: 'cancelled', jobId, coordinator }) + '\n' : `cancelled job ${jobId} on its coordinator ${shortId(coordinator)}\n`)
    }), ['peer', 'swarm-key', 'http-token'])
}
