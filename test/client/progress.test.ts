import test from 'ava'
import { estimate, progressReporter } from '../../src/client/progress.ts'

test('no estimate until a tile is in and a second has gone, none once all are in', t => {
  t.is(estimate(0, 100, 5000), '--')
  t.is(estimate(10, 100, 500), '--')
  t.is(estimate(100, 100, 5000), '--')
  t.is(estimate(10, 100, 2000), '18s')
  t.is(estimate(1, 100, 2000), '3m18s')
  t.is(estimate(1, 10_000, 2000), '5h33m')
})

test('plain progress: peers counted in words, then the encode and the download said as such', t => {
  const lines: string[] = []
  let now = 0
  const report = progressReporter('plain', line => { lines.push(line) }, () => now)
  report({ event: 'accepted', jobId: 'j', width: 10, height: 10, tiles: 4, phases: 1, tileSize: 8, halo: 1, notes: [] })
  report({ event: 'progress', done: 0, total: 4, workers: 0 })
  now = 1500
  report({ event: 'progress', done: 1, total: 4, workers: 1 })
  now = 3000
  report({ event: 'progress', done: 4, total: 4, workers: 3 })
  report({ event: 'encoding' })
  report({ event: 'receiving', received: 5 * 1024 * 1024, total: 5 * 1024 * 1024 })
  t.deepEqual(lines, [
    'job j: 10x10 in 4 tiles of 8 px (halo 1)',
    'progress 0/4 tiles (0 peers, ETA --)',
    'progress 1/4 tiles (1 peer, ETA 5s)',
    'progress 4/4 tiles (3 peers, ETA --)',
    'all tiles in; the coordinator is encoding the result',
    'receiving the result: 5.0 MB of 5.0 MB',
  ])
})
