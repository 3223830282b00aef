#!/usr/bin/env node
// Plain JS on purpose, and no static imports: this must run and fail clearly on old Node.
const major = Number(process.versions.node.split('.')[0])
if (major < 22) {
  process.stderr.write(`tileswarm: needs Node.js 22 or newer (this is ${process.version}); run it through npm scripts or node_modules/.bin/node, which bring Node 24\n`)
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
