import { TILE_MEMO_BYTES } from '../common/defaults.ts'
import { withPassGate, type Gate } from './pixels/gate.ts'
import { TileMemo, type StepContext } from './operations/operation.ts'
import { checkSummary, contextsOfTile, createPlanOutput, phaseReducer, planJob, runPhaseTile, runPrelude, type JobPlan, type TileWork } from './phases.ts'
import type { Step } from './pipeline.ts'
import type { RawImage } from './pixels/raw.ts'
import { placeTile, planTiles, tileInput, type Tile } from './tiles.ts'

/** Tiles computed in this process: one tile (a worker's grant), or a whole job phase by phase (what the swarm does, without the network). */

/**
 * A tile's work from its haloed pixels: the core's pixels, or its phase's
 * summary. Plain steps mean a one-phase job of those steps.
 */
export async function processTile (haloedPixels: RawImage, tile: Tile, steps: readonly Step[], options?: { gate?: Gate }): Promise<RawImage>
export async function processTile (haloedPixels: RawImage, tile: Tile, work: TileWork, options?: { gate?: Gate }): Promise<RawImage | Uint8Array>
export async function processTile (haloedPixels: RawImage, tile: Tile, work: TileWork | readonly Step[], options: { gate?: Gate } = {}): Promise<RawImage | Uint8Array> {
  const w = isTileWork(work) ? work : { plan: localPlan(work, tile, haloedPixels), phase: 0, contexts: new Map<number, Uint8Array>() }
  return await withPassGate(options.gate, async () => await runPhaseTile(haloedPixels, tile, w))
}

/** Plain steps: local ones only, so the tile's own extent stands in for the image's. */
function localPlan (steps: readonly Step[], tile: Tile, pixels: RawImage): JobPlan {
  const plan = planJob(steps, { width: tile.haloed.x + tile.haloed.width, height: tile.haloed.y + tile.haloed.height, format: pixels })
  if (plan.prelude.length > 0 || plan.phases.length > 1) throw new Error('internal: a tile of plain steps takes no geometry or global steps: pass its TileWork')
  return plan
}

function isTileWork (work: TileWork | readonly Step[]): work is TileWork {
  return !Array.isArray(work)
}

/** Tiled processing in one process, phase by phase: what the swarm does, without the network. */
export async function runTiled (image: RawImage, steps: readonly Step[], tileSize: number): Promise<RawImage> {
  const plan = planJob(steps, { width: image.width, height: image.height, format: image })
  const input = await runPrelude(image, plan)
  const contexts = new Map<number, StepContext>()
  const memo = new TileMemo(TILE_MEMO_BYTES)
  let output: RawImage | undefined
  for (const phase of plan.phases) {
    const tiles = planTiles(plan.width, plan.height, tileSize, phase.halo)
    const results = []
    for (const tile of tiles) results.push(await runPhaseTile(tileInput(input, tile), tile, { plan, phase: phase.index, contexts: contextsOfTile(contexts, tile.index), memo }))
    if (phase.summarises !== undefined) {
      const reducer = phaseReducer(plan, phase.index, tiles.map(t => t.core))
      for (const [i, summary] of (results as Uint8Array[]).entries()) {
        const wrong = checkSummary(plan, phase.index, tiles[i]!.core, summary)
        if (wrong !== undefined) throw new Error(`internal: tile ${i}: ${wrong}`)
        reducer.add(i, summary)
      }
      contexts.set(phase.end, reducer.finish())
    } else {
      output = createPlanOutput(plan)
      for (const [i, tile] of tiles.entries()) placeTile(output, tile, results[i] as RawImage)
    }
  }
  return output!
}
