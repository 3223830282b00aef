import test from 'ava'
import type { SwarmStatus } from '../../src/protocol/messages.ts'
import { PeerSamples } from '../../src/web/peer-samples.ts'
import { processLoad } from '../../src/swarm/peer-status.ts'
import { manualClock } from '../helpers/clock.ts'

const SELF = '12D3KooWSelf0000000000000000000000000000000000000000'
const OTHER = '12D3KooWOther000000000000000000000000000000000000000'

test('the dashboard\'s samples: each peer\'s CPU and memory as its hello said, its pace from its count\'s moves, kept ten minutes', t => {
  const clock = manualClock()
  let done = 0
  let otherDone = 100
  const status = (): SwarmStatus => ({ peerId: SELF, done, peers: [{ peerId: OTHER, connected: true, addrs: [], lastSeenS: 0, done: otherDone, cpu: 150, rssBytes: 300e6 }] }) as unknown as SwarmStatus
  const samples = new PeerSamples({ clock, status, own: () => ({ cpu: 50, rssBytes: 200e6 }) })
  samples.start()
  done = 10
  otherDone = 150
  clock.advance(5000)
  const view = samples.view()
  t.is(view.peers[SELF]!.length, 2)
  t.deepEqual(view.peers[SELF]![1], { ageS: 0, cpu: 50, rssBytes: 200e6, tilesPerS: 2 })
  t.deepEqual(view.peers[OTHER]![1], { ageS: 0, cpu: 150, rssBytes: 300e6, tilesPerS: 10 })
  t.is(view.peers[OTHER]![0]!.tilesPerS, undefined, 'no pace from one sample')
  // A peer restarted counts from 0: no negative pace.
  otherDone = 3
  clock.advance(5000)
  t.is(samples.view().peers[OTHER]![2]!.tilesPerS, 0)
  clock.advance(11 * 60_000)
  t.true(samples.view().peers[SELF]!.every(s => s.ageS <= 600), 'ten minutes kept, no more')
  samples.close()
})

test('a process\'s load: CPU in percent of one core, resident memory in bytes', t => {
  const load = processLoad()
  let x = 0
  for (let i = 0; i < 2e6; i++) x += Math.sqrt(i)
  const { cpu, rssBytes } = load()
  t.true(x > 0)
  t.true(cpu > 0 && cpu < 100 * 64, String(cpu))
  t.true(rssBytes > 1e6)
})
