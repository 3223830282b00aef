import test from 'ava'
import { startAll, stopAll, type Startable } from '../../src/common/startable.ts'

/** A part that writes what happens to it in `said`, and fails where told. */
function part (name: string, said: string[], fails: { start?: boolean, stop?: boolean } = {}): Startable {
  return {
    start: async () => {
      said.push(`start ${name}`)
      if (fails.start === true) throw new Error(`${name} cannot start`)
    },
    beforeStop: () => { said.push(`before ${name}`) },
    stop: async () => {
      said.push(`stop ${name}`)
      if (fails.stop === true) throw new Error(`${name} cannot stop`)
    },
  }
}

test('parts start in order and stop in reverse, every one told before any stops', async t => {
  const said: string[] = []
  const parts = [part('a', said), part('b', said), part('c', said)]
  await startAll(parts)
  await stopAll(parts)
  t.deepEqual(said, ['start a', 'start b', 'start c', 'before c', 'before b', 'before a', 'stop c', 'stop b', 'stop a'])
})

test('a part that fails to start: those started before it are stopped, last first, and its error is thrown', async t => {
  const said: string[] = []
  await t.throwsAsync(startAll([part('a', said), part('b', said), part('c', said, { start: true }), part('d', said)]), { message: 'c cannot start' })
  t.deepEqual(said, ['start a', 'start b', 'start c', 'before b', 'before a', 'stop b', 'stop a'])
})

test('a part that fails to stop does not keep the others running: the first error is thrown once all are stopped', async t => {
  const said: string[] = []
  const parts = [part('a', said, { stop: true }), part('b', said), part('c', said, { stop: true })]
  await startAll(parts)
  await t.throwsAsync(stopAll(parts), { message: 'c cannot stop' })
  t.deepEqual(said.filter(s => s.startsWith('stop')), ['stop c', 'stop b', 'stop a'])
})
