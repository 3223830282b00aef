import test from 'ava'
import { Command, CommanderError } from 'commander'
import { withSubmitFlags, swarmOptions, type SubmitCliFlags } from '../../src/cli/submit-flags.ts'
import { withPeerFlags, type PeerFlags } from '../../src/cli/peer-flags.ts'
import { readPriorityList } from '../../src/cli/allow-list.ts'
import { plainUsageError } from '../../src/cli/usage.ts'

const PEER_ID = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'

function parse<T> (make: (c: Command) => Command, args: string[]): T {
  const command = make(new Command('x')).exitOverride().configureOutput({ writeErr: () => {} })
  command.parse(args, { from: 'user' })
  return command.opts<T & object>()
}

function refusal (make: (c: Command) => Command, args: string[]): string {
  try {
    parse(make, args)
  } catch (err) {
    if (err instanceof CommanderError) return plainUsageError(err.message)
    throw err
  }
  throw new Error(`${args.join(' ')} was taken`)
}

test('submit --priority: high, normal or low, unset by default; it goes to the swarm options', async t => {
  t.is(parse<SubmitCliFlags>(withSubmitFlags, []).priority, undefined)
  for (const p of ['high', 'normal', 'low'] as const) {
    const flags = parse<SubmitCliFlags>(withSubmitFlags, ['--priority', p])
    t.is(flags.priority, p)
    t.is((await swarmOptions(flags, ['/ip4/127.0.0.1/tcp/1'])).priority, p)
  }
  t.false('priority' in await swarmOptions(parse<SubmitCliFlags>(withSubmitFlags, []), []))
})

test('submit --priority refuses what is not one, and being given twice', t => {
  t.regex(refusal(withSubmitFlags, ['--priority', 'urgent']), /Expected high, normal, low for --priority but received 'urgent'$/)
  t.regex(refusal(withSubmitFlags, ['--priority', 'HIGH']), /--priority/)
  t.regex(refusal(withSubmitFlags, ['--priority', 'high', '--priority', 'low']), /--priority given twice/)
})

test('peer --allow-priority: peer ids (repeatable, or a list) or all; unset by default', t => {
  t.is(readPriorityList(parse<PeerFlags>(withPeerFlags, []).allowPriority), undefined)
  t.is(readPriorityList(parse<PeerFlags>(withPeerFlags, ['--allow-priority', 'all']).allowPriority), 'all')
  t.deepEqual(readPriorityList(parse<PeerFlags>(withPeerFlags, ['--allow-priority', PEER_ID]).allowPriority), new Set([PEER_ID]))
})

test('peer --allow-priority refuses what is not a peer id, and all beside peer ids', t => {
  t.throws(() => readPriorityList(['nobody']), { name: 'InvalidParameterError', message: "Expected a peer id or all for --allow-priority but received 'nobody'" })
  t.throws(() => readPriorityList(['all', PEER_ID]), { name: 'InvalidParameterError', message: /give it alone, not with peer ids/ })
})
