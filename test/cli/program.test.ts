import test from 'ava'
import { COMMAND_NAMES, DEFAULT_COMMAND, runsDefaultCommand } from '../../src/cli/commands.ts'
import { flagVariable } from '../../src/cli/env.ts'
import { buildProgram } from '../../src/cli/program.ts'
import { misuse } from '../../src/cli/usage.ts'

const program = () => buildProgram({ reporting: { debug: false, json: false }, compute: {} })

test('the program has the listed commands, in their order, the first the default', t => {
  const built = program()
  t.deepEqual(built.commands.map(c => c.name()), [...COMMAND_NAMES])
  t.is(DEFAULT_COMMAND, 'peer')
})

test('a misspelt command is met with the listed ones', t => {
  t.is(misuse(program(), ['stauts']), 'unknown command \'stauts\' (did you mean \'status\'?); commands: peer, submit, status, jobs, watch, cancel, http-token, keygen, id, init')
  t.is(misuse(program(), ['--ops', 'blur']), '--ops is an option of submit, not of a peer: run \'tileswarm submit --ops blur\'')
  t.is(misuse(program(), ['submit', '--ops', 'blur']), undefined)
})

test('the default command runs where no other is named', t => {
  for (const args of [[], ['peer'], ['--slots', '2'], ['sumbit']]) t.true(runsDefaultCommand(args), args.join(' '))
  for (const args of [['submit'], ['status'], ['http-token'], ['keygen'], ['id'], ['init'], ['help']]) t.false(runsDefaultCommand(args), args.join(' '))
})

test('a flag\'s variable is TILESWARM_ and its name', t => {
  t.is(flagVariable('--max-jobs'), 'TILESWARM_MAX_JOBS')
  t.is(flagVariable('slots'), 'TILESWARM_SLOTS')
  t.is(flagVariable('--image_path'), 'TILESWARM_IMAGE_PATH')
})
