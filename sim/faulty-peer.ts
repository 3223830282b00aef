/**
 * The real peer program (src/cli/program.ts, as dist/peer.js runs it) with faults
 * injected into its worker's tile compute, for trying the swarm's defences
 * on real processes:
 *
 * - TILESWARM_LIE_SHARE (0 to 1, default 0): that share of its tiles go back
 *   with one bit flipped, their checksum computed after (`npm run liar-peer`
 *   sets it to 1 unless given);
 * - TILESWARM_HOLD_TILES=1: every tile waits until the process gets SIGUSR2,
 *   so a test can let another peer in first;
 * - TILESWARM_TILE_MS: every tile takes at least this long, holding its pass
 *   (a cost model: slow compute without the CPU, so many such peers fit on
 *   one machine).
 */
import { main } from '../src/cli/program.ts'
import { tuneHeapForTiles } from '../src/common/runtime.ts'
import { processTile } from '../src/imaging/index.ts'
import type { TileProcessor } from '../src/worker/tile-lane.ts'
import { lyingProcessor, type Lies } from './liar.ts'

const share = Number(process.env.TILESWARM_LIE_SHARE ?? '0')
if (!(share >= 0 && share <= 1)) {
  process.stderr.write(`TILESWARM_LIE_SHARE: a share of tiles from 0 to 1, not '${process.env.TILESWARM_LIE_SHARE}'\n`)
  process.exit(1)
}
const { promise: released, resolve: release } = Promise.withResolvers<void>()
if (process.env.TILESWARM_HOLD_TILES === '1') process.on('SIGUSR2', () => { release() })
else release()
const tileMs = Number(process.env.TILESWARM_TILE_MS ?? '0')
if (!(tileMs >= 0)) {
  process.stderr.write(`TILESWARM_TILE_MS: milliseconds, not '${process.env.TILESWARM_TILE_MS}'\n`)
  process.exit(1)
}
const held: TileProcessor = async (pixels, tile, work, gate) => {
  await released
  const out = await processTile(pixels, tile, work, { gate })
  if (tileMs > 0) await gate(async () => { await new Promise(resolve => setTimeout(resolve, tileMs)) })
  return out
}
tuneHeapForTiles()
const lies: Lies = { computed: 0, lied: 0 }
if (share > 0) {
  process.stderr.write(`lying peer: ${(share * 100).toFixed(0)}% of this peer's tiles go back wrong\n`)
  process.on('exit', () => { process.stderr.write(`lying peer: sent ${lies.lied} of ${lies.computed} tiles back wrong\n`) })
}
await main(process.argv, {
  process: lyingProcessor(() => share, Math.random, held, lies, (tile, phase) => { process.stderr.write(`lying peer: tile ${tile} of phase ${phase + 1} goes back wrong\n`) }),
})
