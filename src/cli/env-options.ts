import type { EventEmitter } from 'node:events'
import { type Command, InvalidArgumentError } from 'commander'
import { flagVariable } from './env.ts'

/** Every flag of `command` (or the `only` ones) may come from its TILESWARM_* variable as well (a flag given wins); --help says which. */
export function fromEnvironment (command: Command, only?: string[]): Command {
  for (const option of command.options) {
    const name = option.long?.replace(/^--/, '')
    if (name === undefined || name === 'help' || (only !== undefined && !only.includes(name))) continue
    const variable = flagVariable(name)
    option.env(variable)
    // Commander reads the environment only for options made with it; these were not: the value goes through the flag's own parser.
    command.on(`optionEnv:${option.name()}`, (value?: string) => {
      // VAR= in an env file means unset.
      if (value === '') return
      // A bad value is said to come from the variable, not from a flag nobody gave.
      if (value !== undefined && option.parseArg !== undefined) {
        try {
          option.parseArg(value, undefined)
        } catch (err) {
          throw new InvalidArgumentError(`${variable}='${value}': ${(err as Error).message.replace(/^Allowed choices are (.*)\.$/, 'not one of $1')}`)
        }
      }
      (command as unknown as EventEmitter).emit(`option:${option.name()}`, value)
      command.setOptionValueWithSource(option.attributeName(), command.getOptionValue(option.attributeName()), 'env')
    })
  }
  return command
}

/** The variables `command`'s flags may come from. */
export function flagVariables (command: Command): string[] {
  return command.options.map(o => o.envVar).filter(v => v !== undefined)
}
