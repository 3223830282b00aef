#!/usr/bin/env node
// One static import, which any Node parses: this must run and fail clearly on old Node.
import { oldNodeProblem } from './node-check.ts'
const problem = oldNodeProblem()
if (problem !== undefined) {
  process.stderr.write(`tileswarm: ${problem}\n`)
  process.exit(1)
}
// Before anything uses libuv's pool, which is sized once.
const { sizeThreadPool } = await import('./cli/thread-pool.ts')
sizeThreadPool(process.argv.slice(2))
// Compiled modules are kept on disk (in the temp dir), so a second start skips most of the parsing.
const { enableCompileCache } = await import('node:module')
enableCompileCache?.()
const { tuneHeapForTiles } = await import('./common/runtime.ts')
tuneHeapForTiles()
const { main } = await import('./cli/program.ts')
await main(process.argv)
