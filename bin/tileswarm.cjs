#!/usr/bin/env node
// The installed `tileswarm` command. Whatever node runs this file (often the
// system's, older than the Node 22 tileswarm needs), it runs dist/peer.js on
// the Node 24 the package brings (its `node` dependency). Plain old
// JavaScript on purpose: any Node can parse it.
'use strict'
var childProcess = require('child_process')
var fs = require('fs')
var path = require('path')

var root = path.join(__dirname, '..')
var entry = path.join(root, 'dist', 'peer.js')

function die (message) {
  process.stderr.write('tileswarm: ' + message + '\n')
  process.exit(1)
}

// npm keeps the `node` package's binary at node_modules/node/bin/node, beside this package or above it (a clone's, after npm ci).
function bundledNode () {
  try {
    var bin = path.join(path.dirname(require.resolve('node/package.json', { paths: [root] })), 'bin', 'node')
    fs.accessSync(bin, fs.constants.X_OK)
    return bin
  } catch (err) {
    return undefined
  }
}

var node = bundledNode()
if (node === undefined) die('the Node.js 24 it brings (the npm package `node`, under ' + path.join(root, 'node_modules') + ') is missing: install tileswarm again with scripts allowed (npm install -g tileswarm, without --ignore-scripts), or run npm ci in a clone')
if (!fs.existsSync(entry)) die(entry + ' is missing: in a clone, run npm run build first')

// The memory allocator, as a peer needs it to give memory back once idle (docs/operating.md, Memory).
// jemalloc where the system has it (Debian's libjemalloc2; sharp recommends it on glibc): it returns
// freed pages within seconds. Otherwise glibc's malloc, with blocks of 64 KB and more (tiles, images,
// socket reads) mapped and unmapped on their own rather than kept in its heaps, and two arenas rather
// than eight a core. Both are read as the process starts; a user's own LD_PRELOAD or MALLOC_* wins,
// and TILESWARM_MALLOC=glibc keeps glibc's.
var JEMALLOC = ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2', '/usr/lib64/libjemalloc.so.2', '/usr/lib/libjemalloc.so.2']
var GLIBC_DEFAULTS = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '65536' }
var env = Object.assign({}, process.env)
Object.keys(GLIBC_DEFAULTS).forEach(function (k) { if (env[k] === undefined) env[k] = GLIBC_DEFAULTS[k] })
if (env.LD_PRELOAD === undefined && env.TILESWARM_MALLOC !== 'glibc' && process.platform === 'linux') {
  var jemalloc = JEMALLOC.find(function (p) { return fs.existsSync(p) })
  if (jemalloc !== undefined) {
    env.LD_PRELOAD = jemalloc
    // A thread of its own returns an idle peer's freed pages, with no allocation to prompt it.
    if (env.MALLOC_CONF === undefined) env.MALLOC_CONF = 'background_thread:true'
  }
}

// Its own process group: a Ctrl-C reaches the launcher alone, which passes it on once (the peer takes a second signal as "exit now").
var child = childProcess.spawn(node, [entry].concat(process.argv.slice(2)), { stdio: 'inherit', detached: true, env: env })
// Not SIGUSR1: Node keeps it for its inspector.
var signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2']
signals.forEach(function (signal) {
  process.on(signal, function () {
    try { child.kill(signal) } catch (err) {}
  })
})
child.on('error', function (err) { die('cannot run ' + node + ': ' + err.message) })
child.on('exit', function (code, signal) {
  if (signal === null) process.exit(code === null ? 1 : code)
  // Killed by a signal: end the same way, so the shell sees what the command died of.
  signals.forEach(function (s) { process.removeAllListeners(s) })
  process.kill(process.pid, signal)
})
