import test from 'ava'
import { IdleCollector } from '../../src/swarm/idle-memory.ts'
import { manualClock } from '../helpers/clock.ts'

const clock = manualClock()
const seconds = (n: number): void => { for (let i = 0; i < n; i++) clock.advance(1000) }

test.serial('an idle peer drops its expired results once their lifetime has passed after its work, and once only', async t => {
  let busy = false
  let expired = 0
  const collector = new IdleCollector({ clock, busy: () => busy, expireAfterMs: 5000, expire: () => { expired++ }, collect: () => {} })
  await collector.start()
  /** Busy for `work` seconds, then idle for `idle`. */
  const spell = (work: number, idle: number): void => {
    busy = true
    seconds(work)
    busy = false
    seconds(idle)
  }
  seconds(20)
  t.is(expired, 0, 'no work, nothing to drop')
  spell(3, 5)
  t.is(expired, 0, 'not before the lifetime has passed')
  seconds(3)
  t.is(expired, 1)
  seconds(30)
  t.is(expired, 1, 'once per spell of work')
  spell(1, 3)
  spell(1, 5)
  t.is(expired, 1, 'work again restarts the wait')
  seconds(3)
  t.is(expired, 2)
  await collector.stop()
})

test.serial('peers in one process collect only while none of them is busy: a full collection stops them all', async t => {
  const busy = { a: false, b: false }
  let collections = 0
  const collector = (name: 'a' | 'b'): IdleCollector => new IdleCollector({ clock, busy: () => busy[name], expireAfterMs: 5000, expire: () => {}, collect: () => { collections++ } })
  const a = collector('a')
  const b = collector('b')
  await a.start()
  await b.start()
  /** The peers busy as `state` says (the others as they were) for `s` seconds. */
  const during = (state: Partial<typeof busy>, s: number): void => {
    Object.assign(busy, state)
    seconds(s)
  }
  during({ a: true, b: true }, 2)
  during({ a: false }, 3)
  t.is(collections, 0, 'a went idle while b works')
  during({ b: false }, 1)
  t.is(collections, 1, 'b going idle collects for both')
  // a's results outlive their lifetime while b works again: a's collection waits for b.
  during({ b: true }, 10)
  t.is(collections, 1)
  during({ b: false }, 1)
  t.is(collections, 3, 'b idle after work, and a\'s expired results dropped')
  await b.stop()
  during({ a: true, b: true }, 2)
  during({ a: false }, 1)
  t.is(collections, 4, 'a stopped peer, busy as it was, does not hold the others\' collections back')
  await a.stop()
})
