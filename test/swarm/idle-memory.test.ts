import test from 'ava'
import { IdleCollector } from '../../src/swarm/idle-memory.ts'
import { manualClock } from '../helpers/clock.ts'

test('an idle peer drops its expired results once their lifetime has passed after its work, and once only', async t => {
  const clock = manualClock()
  let busy = false
  let expired = 0
  const collector = new IdleCollector({ clock, busy: () => busy, expireAfterMs: 5000, expire: () => { expired++ } })
  await collector.start()
  const seconds = (n: number): void => { for (let i = 0; i < n; i++) clock.advance(1000) }
  seconds(20)
  t.is(expired, 0, 'no work, nothing to drop')
  busy = true
  seconds(3)
  busy = false
  seconds(5)
  t.is(expired, 0, 'not before the lifetime has passed')
  seconds(3)
  t.is(expired, 1)
  seconds(30)
  t.is(expired, 1, 'once per spell of work')
  busy = true
  seconds(1)
  busy = false
  seconds(3)
  busy = true
  seconds(1)
  busy = false
  seconds(5)
  t.is(expired, 1, 'work again restarts the wait')
  seconds(3)
  t.is(expired, 2)
  await collector.stop()
})
