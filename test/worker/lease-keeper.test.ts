import test from 'ava'
import type { ClaimReply, CoordinatorLink } from '../../src/worker/coordinator-link.ts'
import { LeaseKeeper } from '../../src/worker/lease-keeper.ts'
import { manualClock } from '../helpers/clock.ts'

/** A link whose claims grant batch tasks of `leaseMs`, one lease id after another; it records renewals and releases. */
function fakeLink (leaseMs: number): { link: CoordinatorLink, renewed: string[], released: string[] } {
  let n = 0
  const renewed: string[] = []
  const released: string[] = []
  const link = {
    claim: async (): Promise<ClaimReply> => ({ kind: 'task', task: { leaseId: `l${++n}`, leaseMs, slot: n, key: 'k', format: 'png', file: Buffer.alloc(0) } }),
    renew: async (leaseId: string) => { renewed.push(leaseId); return true },
    release: async (leaseId: string) => { released.push(leaseId) },
  }
  return { link: link as unknown as CoordinatorLink, renewed, released }
}

const tick = async (clock: ReturnType<typeof manualClock>, ms: number): Promise<void> => {
  for (let at = 0; at < ms; at += 50) clock.advance(50)
  await new Promise(resolve => setImmediate(resolve))
}

test('a grant is held from the moment it arrives, renewed at a third of its time, and no longer once settled', async t => {
  const clock = manualClock()
  const keeper = new LeaseKeeper({ clock })
  const { link, renewed } = fakeLink(300)
  keeper.start()
  await keeper.claim(link)
  t.is(keeper.size, 1)
  await tick(clock, 50)
  t.deepEqual(renewed, [])
  await tick(clock, 50)
  t.deepEqual(renewed, ['l1'])
  keeper.settle('l1')
  t.is(keeper.size, 0)
  await tick(clock, 200)
  t.deepEqual(renewed, ['l1'])
  await keeper.stop(AbortSignal.timeout(1000))
})

test('a prefetched grant not used goes back; on stop every lease held goes back at once', async t => {
  const clock = manualClock()
  const keeper = new LeaseKeeper({ clock })
  const { link, released } = fakeLink(1000)
  await keeper.claim(link)
  await keeper.claim(link)
  keeper.giveBack(link, keeper.claim(link))
  await new Promise(resolve => setImmediate(resolve))
  t.deepEqual(released, ['l3'])
  t.is(keeper.size, 2)
  await keeper.stop(AbortSignal.timeout(1000))
  t.deepEqual(released.sort(), ['l1', 'l2', 'l3'])
  t.is(keeper.size, 0)
})
