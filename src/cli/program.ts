import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { InvalidParameterError } from '../common/errors.ts'
import { VERSION } from '../common/version.ts'
import { COMMAND_NAMES, DEFAULT_COMMAND, type CommandName } from './commands.ts'
import type { CliContext, PeerCompute } from './context.ts'
import { cancelCommand } from './cancel-command.ts'
import { httpTokenCommand } from './http-token-command.ts'
import { idCommand } from './id-command.ts'
import { initCommand } from './init-command.ts'
import { jobsCommand } from './jobs-command.ts'
import { keygenCommand } from './keygen-command.ts'
import { peerCommand } from './peer-command.ts'
import { fail } from './report.ts'
import { statusCommand } from './status-command.ts'
import { submitCommand } from './submit-command.ts'
import { watchCommand } from './watch-command.ts'
import { fromVariable, misuse, plainUsageError } from './usage.ts'

/** Each command's builder, one for every name in COMMAND_NAMES. */
const BUILDERS: Record<CommandName, (context: CliContext) => Command> = {
  peer: peerCommand,
  submit: submitCommand,
  status: statusCommand,
  jobs: jobsCommand,
  watch: watchCommand,
  cancel: cancelCommand,
  'http-token': httpTokenCommand,
  keygen: keygenCommand,
  id: idCommand,
  init: initCommand,
}

/** The whole CLI: its commands in COMMAND_NAMES' order, the first the default. */
export function buildProgram (context: CliContext): Command {
  const program = new Command('tileswarm')
    .description('A peer-to-peer image processing swarm. Run a peer on every machine (tileswarm peer --help lists its flags); submit images to any of them (tileswarm submit --help).')
    .version(VERSION)
    .showHelpAfterError('(add --help for usage)')
  for (const name of COMMAND_NAMES) program.addCommand(BUILDERS[name](context), { isDefault: name === DEFAULT_COMMAND })
  // Usage errors come back here (not straight to exit), so --json can report them as an event.
  for (const command of [program, ...program.commands]) {
    command.exitOverride().configureOutput({ outputError: (str, write) => { if (!context.reporting.json) write(`tileswarm: ${plainUsageError(str)}`) } })
  }
  return program
}

/** Runs the CLI on `argv` (process.argv's shape); `compute` swaps the peer's, for the simulator. */
export async function main (argv: string[], compute: PeerCompute = {}): Promise<void> {
  const context: CliContext = { reporting: { debug: argv.includes('--debug'), json: argv.includes('--json') }, compute }
  const program = buildProgram(context)
  try {
    const wrong = misuse(program, argv.slice(2))
    if (wrong !== undefined) throw new InvalidArgumentError(wrong)
    await program.parseAsync(argv)
  } catch (err) {
    if (err instanceof Error && !(err instanceof CommanderError)) err.message = fromVariable(program, err.message)
    // Ours (thrown by a check or an action), not yet printed; commander's own come as CommanderError.
    if (err instanceof InvalidArgumentError) fail(context.reporting, new InvalidParameterError(err.message))
    if (err instanceof CommanderError) {
      // Help and version end here too, with 0; a usage error was printed already, except under --json.
      if (err.exitCode === 0) process.exit(0)
      if (context.reporting.json) fail(context.reporting, new InvalidParameterError(plainUsageError(err.message)))
      process.exit(err.exitCode)
    }
    fail(context.reporting, err)
  }
}
