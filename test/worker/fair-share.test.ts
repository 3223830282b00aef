import test from 'ava'
import fc from 'fast-check'
import { FairShare, type ShareJob } from '../../src/worker/fair-share.ts'

interface SimJob extends ShareJob { unitMs: number, units?: number, arrivesAt?: number }

/**
 * Lanes of one worker over jobs, in simulated time: a free lane takes the
 * job the share chooses, does one unit, is charged, then stays or moves.
 * Returns each job's units and compute time done before `untilMs`, and each
 * job's end (the time its last unit ended), with the order units started in.
 */
function simulate (jobs: SimJob[], options: { lanes: number, untilMs: number }): { units: Map<string, number>, ms: Map<string, number>, ended: Map<string, number>, order: string[] } {
  const share = new FairShare()
  const units = new Map(jobs.map(j => [j.jobId, 0]))
  const ms = new Map(jobs.map(j => [j.jobId, 0]))
  const ended = new Map<string, number>()
  const order: string[] = []
  const left = new Map(jobs.map(j => [j.jobId, j.units ?? Infinity]))
  const lanesOn = new Map(jobs.map(j => [j.jobId, 0]))
  /** Each lane: the job it is on, and when its unit ends. */
  const lanes = Array.from({ length: options.lanes }, () => ({ on: undefined as string | undefined, endsAt: 0 }))
  let now = 0
  const candidates = (): Array<{ jobId: string, lanes: number }> => jobs.filter(j => (j.arrivesAt ?? 0) <= now && left.get(j.jobId)! > 0).map(j => ({ jobId: j.jobId, lanes: lanesOn.get(j.jobId)! }))
  while (now < options.untilMs) {
    for (const j of jobs) if ((j.arrivesAt ?? 0) <= now && !share.has(j.jobId) && !ended.has(j.jobId)) share.add(j)
    for (const lane of lanes) {
      if (lane.endsAt > now) continue
      if (lane.on !== undefined) {
        const job = jobs.find(j => j.jobId === lane.on)!
        share.charge(job.jobId, job.unitMs)
        units.set(job.jobId, units.get(job.jobId)! + 1)
        ms.set(job.jobId, ms.get(job.jobId)! + job.unitMs)
        if (left.get(job.jobId) === 0 && ![...lanes].some(l => l !== lane && l.on === job.jobId)) { ended.set(job.jobId, now); share.drop(job.jobId) }
      }
      const next = share.choose(candidates(), lane.on)
      if (lane.on !== undefined) lanesOn.set(lane.on, lanesOn.get(lane.on)! - 1)
      lane.on = next
      if (next === undefined) { lane.endsAt = now + 1; continue }
      lanesOn.set(next, lanesOn.get(next)! + 1)
      left.set(next, left.get(next)! - 1)
      order.push(next)
      lane.endsAt = now + jobs.find(j => j.jobId === next)!.unitMs
    }
    now = Math.min(...lanes.map(l => l.endsAt))
  }
  return { units, ms, ended, order }
}

const shareOf = (ms: Map<string, number>, id: string): number => ms.get(id)! / [...ms.values()].reduce((a, b) => a + b, 0)

test('two equal jobs on one lane alternate', t => {
  const { order } = simulate([{ jobId: 'a', submitter: 's', weight: 2, unitMs: 10 }, { jobId: 'b', submitter: 's', weight: 2, unitMs: 10 }], { lanes: 1, untilMs: 200 })
  // Never more than two in a row of one job: the lane moves on once its job is half a unit ahead.
  const runs = order.join('').match(/a+|b+/g)!
  t.true(runs.every(r => r.length <= 2), order.join(''))
  t.true(runs.length >= 8, order.join(''))
})

test('two equal jobs of two submitters get half the lanes each, by time, whatever their unit sizes', t => {
  const { ms } = simulate([{ jobId: 'a', submitter: 'x', weight: 2, unitMs: 7 }, { jobId: 'b', submitter: 'y', weight: 2, unitMs: 31 }], { lanes: 4, untilMs: 20_000 })
  t.true(Math.abs(shareOf(ms, 'a') - 0.5) < 0.03, JSON.stringify([...ms]))
})

test('weights 4:2:1 (high, normal, low) give shares 4:2:1', t => {
  const { ms } = simulate([
    { jobId: 'h', submitter: 'x', weight: 4, unitMs: 10 },
    { jobId: 'n', submitter: 'y', weight: 2, unitMs: 10 },
    { jobId: 'l', submitter: 'z', weight: 1, unitMs: 10 },
  ], { lanes: 4, untilMs: 20_000 })
  t.true(Math.abs(shareOf(ms, 'h') - 4 / 7) < 0.03, JSON.stringify([...ms]))
  t.true(Math.abs(shareOf(ms, 'n') - 2 / 7) < 0.03, JSON.stringify([...ms]))
  t.true(Math.abs(shareOf(ms, 'l') - 1 / 7) < 0.03, JSON.stringify([...ms]))
})

test('high beside normal of one submitter: 4:2 within it', t => {
  const { ms } = simulate([{ jobId: 'h', submitter: 'x', weight: 4, unitMs: 10 }, { jobId: 'n', submitter: 'x', weight: 2, unitMs: 10 }], { lanes: 2, untilMs: 20_000 })
  t.true(Math.abs(shareOf(ms, 'h') - 2 / 3) < 0.03, JSON.stringify([...ms]))
})

test('one submitter\'s 50 jobs against another\'s one: half each', t => {
  const many = Array.from({ length: 50 }, (_, i) => ({ jobId: `m${i}`, submitter: 'many', weight: 2, unitMs: 10 }))
  const { ms } = simulate([...many, { jobId: 'one', submitter: 'single', weight: 2, unitMs: 10 }], { lanes: 4, untilMs: 20_000 })
  t.true(Math.abs(shareOf(ms, 'one') - 0.5) < 0.03, `the lone job's share: ${shareOf(ms, 'one')}`)
  // And the 50 share their half evenly.
  const theirs = many.map(m => ms.get(m.jobId)!)
  t.true(Math.max(...theirs) - Math.min(...theirs) <= 2 * 10 * 2, JSON.stringify(theirs))
})

test('a newcomer gets its share at once, neither everything nor nothing', t => {
  const { order } = simulate([{ jobId: 'big', submitter: 'x', weight: 2, unitMs: 10 }, { jobId: 'new', submitter: 'y', weight: 2, unitMs: 10, arrivesAt: 5000 }], { lanes: 4, untilMs: 6000 })
  const firstNew = order.indexOf('new')
  const after = order.slice(firstNew, firstNew + 40)
  const newShare = after.filter(j => j === 'new').length / after.length
  // Within a unit per lane it has lanes, and from then about half of them, not all (it did not start at zero).
  // 4 lanes, 10 ms units: 2000 units started before it came; its first within the next lane's free.
  t.true(firstNew >= 2000 && firstNew <= 2004, `first unit of the newcomer: the ${firstNew}th`)
  t.true(newShare > 0.35 && newShare < 0.65, `the newcomer's share of the next 40 units: ${newShare}`)
})

test('a small job beside a big one ends about as soon as with half the lanes', t => {
  const { ended } = simulate([{ jobId: 'big', submitter: 'x', weight: 2, unitMs: 10 }, { jobId: 'small', submitter: 'y', weight: 2, unitMs: 10, units: 40, arrivesAt: 1000 }], { lanes: 4, untilMs: 3000 })
  // Alone on 4 lanes: 100 ms; with 2 lanes: 200 ms; a unit per lane to switch.
  t.true(ended.get('small')! - 1000 <= 200 + 20, `ended after ${ended.get('small')! - 1000} ms`)
})

test('a job that finishes is dropped: the others share everything', t => {
  const { ms } = simulate([{ jobId: 'short', submitter: 'x', weight: 2, unitMs: 10, units: 20 }, { jobId: 'a', submitter: 'y', weight: 2, unitMs: 10 }, { jobId: 'b', submitter: 'z', weight: 2, unitMs: 10 }], { lanes: 2, untilMs: 10_000 })
  t.is(ms.get('short'), 200)
  t.true(Math.abs(ms.get('a')! - ms.get('b')!) <= 40, JSON.stringify([...ms]))
  const share = new FairShare()
  share.add({ jobId: 'gone', submitter: 's', weight: 2 })
  share.drop('gone')
  t.false(share.has('gone'))
  t.is(share.choose([]), undefined)
  // Unknown to the share (never added): still chosen, not lost.
  t.is(share.choose([{ jobId: 'stranger', lanes: 0 }]), 'stranger')
})

test('a job back after a wait starts at the current virtual time, not behind', t => {
  const share = new FairShare()
  share.add({ jobId: 'a', submitter: 'x', weight: 2 })
  share.add({ jobId: 'b', submitter: 'y', weight: 2 })
  for (let i = 0; i < 5; i++) share.charge('a', 10)
  share.idle('b')
  for (let i = 0; i < 100; i++) share.charge('a', 10)
  // b is back: it alternates with a rather than taking the next 100 units.
  const picks: string[] = []
  let on: string | undefined
  for (let i = 0; i < 10; i++) {
    on = share.choose([{ jobId: 'a', lanes: on === 'a' ? 1 : 0 }, { jobId: 'b', lanes: on === 'b' ? 1 : 0 }], on)!
    picks.push(on)
    share.charge(on, 10)
  }
  t.true(picks.filter(p => p === 'a').length >= 4, picks.join(''))
})

test('property: equal jobs of any number of submitters, lanes and unit times share within a few percent', t => {
  fc.assert(fc.property(fc.integer({ min: 2, max: 5 }), fc.integer({ min: 1, max: 8 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 5, maxLength: 5 }), (k, lanes, unitMs) => {
    const jobs = Array.from({ length: k }, (_, i) => ({ jobId: `j${i}`, submitter: `s${i}`, weight: 2, unitMs: unitMs[i]! }))
    const { ms } = simulate(jobs, { lanes, untilMs: 400 * Math.max(...unitMs) })
    return jobs.every(j => Math.abs(shareOf(ms, j.jobId) - 1 / k) < 0.25 / k)
  }), { numRuns: 40 })
  t.pass()
})
