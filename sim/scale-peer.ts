/**
 * The real peer program (src/cli/program.ts, as dist/peer.js runs it) on an emulated
 * host of `npm run bench:scale`, its compute (decoding, tiles) replaced by
 * the cost model in the JSON file $TILESWARM_MODEL, written by sim/scale.ts.
 */
import { readFileSync } from 'node:fs'
import { tuneHeapForTiles } from '../src/common/runtime.ts'
import { main } from '../src/cli/program.ts'
import { modelledCompute, type ComputeModel } from './model.ts'

const path = process.env.TILESWARM_MODEL
if (path === undefined) throw new Error('TILESWARM_MODEL: the cost model file sim/scale.ts writes')
const { patch, ...model } = JSON.parse(readFileSync(path, 'utf8')) as Omit<ComputeModel, 'patch'> & { patch: { file: string, width: number, height: number, channels: 1 | 2 | 3 | 4, depth: 8 | 16 } }
tuneHeapForTiles()
// sim/scale.ts starts hosts with --spread always: the model covers tiles, not one real pipeline.
await main(process.argv, modelledCompute({ ...model, patch: { ...patch, data: readFileSync(patch.file) } }))
