import test from 'ava'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { settingsText } from '../../src/cli/settings-file.ts'
import { runCli } from '../helpers/cli.ts'
import { tempDir } from '../helpers/swarm.ts'

const ID = '12D3KooWLRPJAA5o6Z6gmCEjiS6Jt7ZxhHjoTrcoF7uGpHXX9bsk'

test('init writes the settings file, makes the key, and prints the bootstrap address with the id that `id` prints', async t => {
  const dir = await tempDir()
  const [data, settings] = [join(dir, 'data'), join(dir, 'etc', 'tileswarm.env')]
  const r = await runCli(['init', '--data-dir', data, '--settings', settings, '--host', '10.0.0.5', '--port', '4100', '--bootstrap', `10.0.0.4:4001/${ID}`])
  t.is(r.code, 0, r.stderr)
  const id = (await runCli(['id', '--data-dir', data])).stdout.trim()
  t.regex(id, /^12D3KooW\w+$/)
  t.is(r.stdout, `/ip4/10.0.0.5/tcp/4100/p2p/${id}\n`)
  t.regex(r.stderr, new RegExp(`^wrote ${settings}; peer ${id} \\(its key in ${data}\\)`))
  const text = await readFile(settings, 'utf8')
  for (const line of ['TILESWARM_LISTEN=/ip4/0.0.0.0/tcp/4100', 'TILESWARM_ANNOUNCE=/ip4/10.0.0.5/tcp/4100', `TILESWARM_BOOTSTRAP=10.0.0.4:4001/${ID}`, '# TILESWARM_SWARM_KEY=/etc/tileswarm/swarm.key', 'TILESWARM_LOG_FORMAT=json']) t.true(text.split('\n').includes(line), line)
  // Run again: the file stays unless --force; the key, and so the id, stay.
  const again = await runCli(['init', '--data-dir', data, '--settings', settings, '--host', '10.0.0.5'])
  t.is(again.code, 1)
  t.is(again.stderr, `tileswarm: ${settings} exists; give --force to replace it\n`)
  const forced = await runCli(['init', '--data-dir', data, '--settings', settings, '--host', 'vm-1.internal', '--force'])
  t.is(forced.stdout, `/dns4/vm-1.internal/tcp/4001/p2p/${id}\n`)
})

test('init refuses a bad address or key in one line, before writing anything', async t => {
  const dir = await tempDir()
  const settings = join(dir, 'tileswarm.env')
  const bad = await runCli(['init', '--data-dir', join(dir, 'data'), '--settings', settings, '--bootstrap', '10.0.0.4'])
  t.is(bad.code, 1)
  t.regex(bad.stderr, /^tileswarm: Expected a multiaddr for --bootstrap, .* or host:port .*, but received '10\.0\.0\.4'\n$/)
  const noKey = await runCli(['init', '--data-dir', join(dir, 'data'), '--settings', settings, '--swarm-key', join(dir, 'missing.key')])
  t.is(noKey.code, 1)
  const open = await runCli(['init', '--data-dir', join(dir, 'data'), '--settings', settings, '--http', '0.0.0.0:8080'])
  t.is(open.stderr, 'tileswarm: --http 0.0.0.0:8080 is reachable from other machines: give --http-token <secret> or --swarm-key (from which a token is derived), or bind to 127.0.0.1\n')
  await t.throwsAsync(readFile(settings))
})

test('the settings file: what is given set, the rest shown commented out', t => {
  const text = settingsText({ port: 4001, swarmKey: '/etc/tileswarm/swarm.key', http: '0.0.0.0:8080' })
  t.true(text.includes('\nTILESWARM_SWARM_KEY=/etc/tileswarm/swarm.key\n'))
  t.true(text.includes('\nTILESWARM_HTTP=0.0.0.0:8080\n'))
  t.true(text.includes('\n# TILESWARM_BOOTSTRAP=/ip4/10.0.0.5/tcp/4001/p2p/12D3KooW...\n'))
  t.true(text.includes('\n# TILESWARM_ANNOUNCE='))
  // Every setting line is a variable the peer reads, or a comment.
  for (const line of text.split('\n').filter(l => l !== '')) t.regex(line, /^(#|TILESWARM_[A-Z_]+=)/)
})
