import { Command, InvalidArgumentError } from 'commander'
import { removePartials, stopWriting } from '../client/files.ts'
import { isBatchInput } from '../client/batch-plan.ts'
import { describeOperations } from '../imaging/index.ts'
import type { CliContext } from './context.ts'
import { fromEnvironment } from './env-options.ts'
import { peerOrLocal } from './local-peer.ts'
import type { Reporting } from './report.ts'
import { submitBatchCommand } from './submit-batch.ts'
import { withSubmitFlags, type SubmitCliFlags } from './submit-flags.ts'
import { submitImage } from './submit-image.ts'

/** Exit status of an interrupted submit (128 + SIGINT, as a shell says it). */
const INTERRUPTED_EXIT = 130

/** `tileswarm submit`: --peer and --swarm-key may come from their TILESWARM_* variables. */
export function submitCommand (context: CliContext): Command {
  const command: Command = withSubmitFlags(new Command('submit')
    .description('process an image, or a batch of them (several -i, a folder, a glob): in this process (--local) or on a swarm (--peer; by default the peer running on this machine)')
    .addHelpText('after', '\nExit status: 0 every output written (skipped ones count); 1 an error, nothing more done; 3 a batch in which some images failed (each named; the others are written); 130 interrupted (outputs written so far stay: --skip-existing goes on from there).'))
    .action(async (flags: SubmitCliFlags) => {
      context.reporting.debug = flags.debug === true
      context.reporting.json = flags.json === true
      if (flags.listOps === true) {
        process.stdout.write(describeOperations() + '\n')
        return
      }
      if (flags.out !== undefined && flags.output_path !== undefined) throw new InvalidArgumentError(`the output is given twice (-o/--out '${flags.out}' and --output_path '${flags.output_path}'); give it once`)
      const inputs = [...(flags.imagePath ?? []), ...(flags.image_path ?? [])]
      const out = flags.out ?? flags.output_path
      // TILESWARM_PEER names the usual swarm; --local still means here.
      if (flags.local === true && command.getOptionValueSource('peer') === 'env') delete flags.peer
      if (flags.local === true && flags.peer !== undefined) throw new InvalidArgumentError('give --local or --peer, not both')
      // Neither: the peer running on this machine, if one does.
      if (flags.local !== true) flags.peer = await peerOrLocal(flags, 'give --peer (a swarm) or --local (process here)')
      onInterruptLeave(context.reporting)
      if (await isBatchInput(inputs)) await submitBatchCommand(flags, inputs, out, context.reporting)
      else await submitImage(flags, inputs, out, context.reporting)
    })
  return fromEnvironment(command, ['peer', 'swarm-key'])
}

/** Interrupted: the partial outputs go with us; finished ones stay (--skip-existing resumes). */
function onInterruptLeave (reporting: Reporting): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      // Files being written as the signal came are waited for (briefly), so that what is said written is what is on disk.
      void stopWriting().then(() => {
        removePartials()
        reporting.onInterrupt?.()
        process.exit(INTERRUPTED_EXIT)
      })
    })
  }
}
