import test from 'ava'
import { join } from 'node:path'
import { runPeerJs as runCli, startPeerProcess } from '../../sim/processes.ts'
import { tempDir } from '../helpers/swarm.ts'
import { fixture } from '../helpers/fixtures.ts'

test.serial('operators: settings from TILESWARM_* variables, JSON logs with the peer id, warn-level logs, the web page\'s address printed, and `status` as text and JSON', async t => {
  const dir = await tempDir()
  // A flag wins over its variable.
  const first = await startPeerProcess('p1', ['--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(dir, 'a'), '--slots', '1', '--http', '127.0.0.1:0', '--log-format', 'json'], { env: { ...process.env, TILESWARM_SLOTS: '3', TILESWARM_LOG_FORMAT: 'text' } })
  // Everything from the environment: bootstrap, slots, no page; only warnings logged.
  const env = { ...process.env, TILESWARM_BOOTSTRAP: first.addr, TILESWARM_SLOTS: '2', TILESWARM_HTTP: 'off', TILESWARM_LOG_LEVEL: 'warn', TILESWARM_DATA_DIR: join(dir, 'b') }
  const second = await startPeerProcess('p2', ['--listen', '/ip4/127.0.0.1/tcp/0'], { env })
  try {
    const joined = await first.waitFor(/peer joined/, 20_000)
    const line = JSON.parse(joined) as { level: string, time: string, peer: string, msg: string }
    t.is(line.level, 'info')
    t.is(line.peer, first.peerId)
    t.is(line.msg, `peer joined ${second.peerId.slice(-8)}`, 'peer ids in logs in their short form')
    t.regex(line.time, /^\d{4}-\d\d-\d\dT/)
    const page = await first.waitFor(/^web page on /, 5000)
    const url = /^web page on (http:\/\/127\.0\.0\.1:\d+\/) /.exec(page)![1]!
    t.is((await fetch(`${url}healthz`)).status, 200)
    t.false(second.lines.some(l => /web page on/.test(l)), '--http off from TILESWARM_HTTP')
    t.false(second.lines.some(l => /INFO|peer joined| up: /.test(l)), `warn level: no info lines (${second.lines.join(' | ')})`)

    const json = await runCli(['status', '--peer', first.addr, '--json'], { timeoutMs: 20_000 })
    t.is(json.code, 0, json.stderr)
    const status = JSON.parse(json.stdout) as { peerId: string, slots: number, peers: Array<{ peerId: string, connected: boolean, slots?: number }> }
    t.is(status.peerId, first.peerId)
    t.is(status.slots, 1)
    const other = status.peers.find(p => p.peerId === second.peerId)
    t.true(other?.connected)
    // The first address that answers is asked.
    const text = await runCli(['status'], { timeoutMs: 20_000, env: { ...process.env, TILESWARM_PEER: `/ip4/127.0.0.1/tcp/1/p2p/${first.peerId},${first.addr}` } })
    // Several entry points in one variable: the first is not there, the second takes the job.
    const dead = `/ip4/127.0.0.1/tcp/1/p2p/${second.peerId}`
    const out = join(dir, 'o.png')
    const submitted = await runCli(['submit', '--ops', 'invert', '-i', fixture('low-contrast.jpg'), '-o', out, '--connect-timeout-ms', '2000'], { timeoutMs: 60_000, env: { ...process.env, TILESWARM_PEER: `${dead},${first.addr}` } })
    t.is(submitted.code, 0, submitted.stderr)
    t.is(text.code, 0, text.stderr)
    t.regex(text.stdout, new RegExp(`^peer ${first.peerId} \\(tileswarm \\d+\\.\\d+\\.\\d+, protocol \\d+\\): up \\d+ s, 1 slot,`))
    t.regex(text.stdout, /peers: 1 connected/)
    t.regex(text.stdout, new RegExp(`${second.peerId.slice(-8)}\\s+connected`))
    t.regex(text.stdout, /jobs: 0 here, 0 elsewhere/)
  } finally {
    await second.stop()
    await first.stop()
  }
  // Mistakes said in one line.
  const gone = await runCli(['status', '--peer', first.addr, '--connect-timeout-ms', '1000'], { timeoutMs: 20_000 })
  t.is(gone.code, 1)
  t.regex(gone.stderr, /^tileswarm: cannot reach .*\n$/)
  const notAddress = await runCli(['status', '--peer', '127.0.0.1:port'], { timeoutMs: 20_000 })
  t.is(notAddress.code, 1)
  t.regex(notAddress.stderr, /^tileswarm: .*--peer.*\n$/)
  const open = await runCli(['--http', '0.0.0.0:0', '--data-dir', join(dir, 'c'), '--listen', '/ip4/127.0.0.1/tcp/0'], { timeoutMs: 20_000 })
  t.is(open.code, 1)
  t.is(open.stderr, 'tileswarm: --http 0.0.0.0:0 is reachable from other machines: give --http-token <secret> (or --swarm-key, from which a token is derived), or bind to 127.0.0.1\n')
  const badEnv = await runCli(['--data-dir', join(dir, 'c')], { timeoutMs: 20_000, env: { ...process.env, TILESWARM_LOG_LEVEL: 'verbose' } })
  t.is(badEnv.code, 1)
  t.is(badEnv.stderr, 'tileswarm: TILESWARM_LOG_LEVEL=\'verbose\': not one of debug, info, warn, error\n', 'a bad value is said to come from its variable')
  const announceId = await runCli(['--announce', `/ip4/198.18.0.9/tcp/4001/p2p/${first.peerId}`, '--data-dir', join(dir, 'c')], { timeoutMs: 20_000 })
  t.is(announceId.code, 1)
  t.regex(announceId.stderr, /--announce .*: leave out \/p2p\//)
  const badHttp = await runCli(['--http', 'localhost', '--data-dir', join(dir, 'c')], { timeoutMs: 20_000 })
  t.is(badHttp.code, 1)
  t.regex(badHttp.stderr, /--http must be host:port/)
})
