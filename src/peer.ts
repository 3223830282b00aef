#!/usr/bin/env node
// Plain JS on purpose, and no static imports: this must run and fail clearly on old Node.
const major = Number(process.versions.node.split('.')[0])
if (major < 22) {
  process.stderr.write(`tileswarm: needs Node.js 22 or newer (this is ${process.version}); run it through npm scripts or node_modules/.bin/node, which bring Node 24\n`)
  process.exit(1)
}
// libuv's pool runs sharp's work, one pass per pool thread. A peer gets one
// thread per --slots: the pool then bounds the passes computing at once, and
// a pass queued behind another starts the moment it ends, with no trip through
// a busy event loop. Other commands get a thread per core and room for files.
if (process.env.UV_THREADPOOL_SIZE === undefined) {
  const { availableParallelism } = await import('node:os')
  const args = process.argv.slice(2)
  const peer = !['submit', 'status', 'http-token', 'keygen', 'id', 'help'].includes(args[0] ?? '')
  const at = args.findIndex(a => a === '--slots' || a.startsWith('--slots='))
  // As the CLI reads it: the flag, else TILESWARM_SLOTS, else a slot per core.
  const slots = at >= 0 ? Number(args[at].includes('=') ? args[at].split('=')[1] : args[at + 1]) : process.env.TILESWARM_SLOTS !== undefined ? Number(process.env.TILESWARM_SLOTS) : availableParallelism()
  // A bad --slots is the CLI's to report; the pool just takes the default.
  process.env.UV_THREADPOOL_SIZE = String(peer && Number.isInteger(slots) && slots >= 1 && slots <= 1024 ? slots : Math.max(4, availableParallelism() + 2))
}
// Compiled modules are kept on disk (in the temp dir), so a second start skips most of the parsing.
const { enableCompileCache } = await import('node:module')
enableCompileCache?.()
const { tuneHeapForTiles } = await import('./common/runtime.ts')
tuneHeapForTiles()
const { main } = await import('./cli/program.ts')
await main(process.argv)
