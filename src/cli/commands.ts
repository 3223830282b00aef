/**
 * The CLI's commands, in the order help lists them; the first is the default.
 * No imports: the entry reads this before it sizes libuv's pool.
 */
export const COMMAND_NAMES = ['peer', 'submit', 'status', 'jobs', 'watch', 'cancel', 'http-token', 'keygen', 'id', 'init'] as const

export type CommandName = typeof COMMAND_NAMES[number]

/** What runs when the first argument names no command. */
export const DEFAULT_COMMAND: CommandName = COMMAND_NAMES[0]

/** Whether the arguments run the default command: no command named (commander's own `help` included). */
export function runsDefaultCommand (args: readonly string[]): boolean {
  const first = args[0] ?? ''
  return first === DEFAULT_COMMAND || !([...COMMAND_NAMES, 'help'] as string[]).includes(first)
}
