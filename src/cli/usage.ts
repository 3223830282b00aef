import type { Command } from 'commander'
import { didYouMean } from '../common/suggest.ts'
import { DEFAULT_COMMAND, type CommandName } from './commands.ts'

/** Commander's words around our own message ("option '--x <v>' argument 'y' is invalid.") say nothing ours does not. */
export function plainUsageError (message: string): string {
  const choice = message.match(/^(?:error: )?option '(--[\w-]+)[^']*' argument '([^']*)' is invalid\. Allowed choices are (.*)\.(\s*)$/)
  if (choice !== null) return `${choice[1]} '${choice[2]}' is not one of ${choice[3]}${choice[4]}`
  return message.replace(/^error: /, '').replace(/^option '[^']*' argument '[^']*' is invalid\. /, '')
}

/**
 * Mistakes commander would answer with a bare 'unknown option': a misspelt
 * command (taken as an argument of the default peer command), or submit's
 * flags given to the peer command because 'submit' was left out.
 */
export function misuse (program: Command, args: string[]): string | undefined {
  const commands = program.commands.map(c => c.name())
  const first = args[0]
  if (first === undefined) return undefined
  if (!first.startsWith('-') && !commands.includes(first) && first !== 'help') {
    return `unknown command '${first}'${didYouMean(first, commands)}; commands: ${commands.join(', ')}`
  }
  if (commands.includes(first) && first !== DEFAULT_COMMAND) return undefined
  const peerFlags = flagsOf(program, DEFAULT_COMMAND)
  const submitFlags = flagsOf(program, 'submit' satisfies CommandName)
  const flag = args.map(a => a.split('=')[0]!).find(a => a.startsWith('-') && !peerFlags.has(a) && submitFlags.has(a))
  if (flag !== undefined) return `${flag} is an option of submit, not of a peer: run 'tileswarm submit ${args.filter(a => a !== DEFAULT_COMMAND).join(' ')}'`
  return undefined
}

/** Every spelling of the flags of the program's command `name`. */
function flagsOf (program: Command, name: CommandName): Set<string> {
  return new Set(program.commands.find(c => c.name() === name)!.options.flatMap(o => [o.long, o.short]).filter(f => f !== undefined))
}

/** A check that names a flag whose value came from its TILESWARM_* variable says so. */
export function fromVariable (program: Command, message: string): string {
  for (const command of [program, ...program.commands]) {
    for (const option of command.options) {
      if (option.long === undefined || option.envVar === undefined || command.getOptionValueSource(option.attributeName()) !== 'env') continue
      const at = new RegExp(`${option.long}(?![\\w-])`)
      if (at.test(message) && !message.includes(option.envVar)) return message.replace(at, `${option.long} (${option.envVar})`)
    }
  }
  return message
}
