#!/usr/bin/env node
// Plain JS on purpose, and no static imports: this must run and fail clearly on old Node.
const major = Number(process.versions.node.split('.')[0])
if (major < 22) {
  process.stderr.write(`tileswarm: needs Node.js 22 or newer (this is ${process.version}); run it through npm scripts or node_modules/.bin/node, which bring Node 24\n`)
  process.exit(1)
}
// libuv's pool runs sharp's work: give it a thread per core plus room for file I/O.
if (process.env.UV_THREADPOOL_SIZE === undefined) {
  const { availableParallelism } = await import('node:os')
  process.env.UV_THREADPOOL_SIZE = String(Math.max(4, availableParallelism() + 2))
}
const { tuneHeapForTiles } = await import('./runtime.ts')
tuneHeapForTiles()
const { main } = await import('./cli.ts')
await main(process.argv)
