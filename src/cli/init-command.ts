import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Command } from 'commander'
import { InvalidParameterError, OutputError } from '../common/errors.ts'
import { isLoopback, parsePeerAddress, tcpAddressText } from '../net/address.ts'
import { loadOrCreateKey } from '../net/identity.ts'
import { readSwarmKey } from '../net/swarm-key.ts'
import { collectList, integerOption } from './args.ts'
import { outwardAddress } from './host-address.ts'
import { SERVICE_DATA_DIR } from './local-peer.ts'
import { DEFAULT_PORT, SERVICE_SETTINGS_FILE, settingsText } from './settings-file.ts'

interface InitFlags {
  dataDir: string
  settings: string
  host?: string
  port: number
  bootstrap?: string[]
  swarmKey?: string
  http?: string
  httpToken?: string
  force?: boolean
}

/** `tileswarm init`: a machine made ready for the systemd unit: its settings file, its key, and the address others join through. */
export function initCommand (): Command {
  return new Command('init')
    .description('make this machine ready to run the peer service (deploy/tileswarm.service): write its settings file and its identity key, and print the bootstrap address other machines join through (docs/deploy.md)')
    .option('--data-dir <dir>', 'where the peer keeps its key (the unit\'s)', SERVICE_DATA_DIR)
    .option('--settings <file>', 'the settings file to write (the unit\'s)', SERVICE_SETTINGS_FILE)
    .option('--host <address>', 'the address other machines reach this one at (announced with --announce); default: this machine\'s first IPv4 address off loopback')
    .option('--port <n>', 'the TCP port the peer listens on', integerOption('--port', 1, 65535), DEFAULT_PORT)
    .option('--bootstrap <address>', 'a peer of the swarm to join through (what its init printed); none for the first peer; repeatable', collectList)
    .option('--swarm-key <file>', 'the private swarm\'s key (tileswarm keygen), the same file on every machine')
    .option('--http <host:port>', 'serve the web page there (0.0.0.0:8080 for other machines; it then needs a token)')
    .option('--http-token <secret>', 'the web page\'s token (default with --swarm-key: one derived from it, tileswarm http-token prints it)')
    .option('--force', 'replace an existing settings file')
    .action(async (flags: InitFlags) => { await init(flags) })
}

async function init (flags: InitFlags): Promise<void> {
  for (const addr of flags.bootstrap ?? []) parsePeerAddress(addr, '--bootstrap')
  if (flags.host !== undefined && tcpAddressText(flags.host, flags.port) === undefined) throw new InvalidParameterError(`--host '${flags.host}' is neither an IP address nor a host name`)
  // The peer would refuse to start so: said now, not in its journal.
  if (flags.http !== undefined && flags.http !== 'off' && !isLoopback(flags.http.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1')) && flags.httpToken === undefined && flags.swarmKey === undefined) {
    throw new InvalidParameterError(`--http ${flags.http} is reachable from other machines: give --http-token <secret> or --swarm-key (from which a token is derived), or bind to 127.0.0.1`)
  }
  const swarmKey = flags.swarmKey !== undefined ? resolve(flags.swarmKey) : undefined
  if (swarmKey !== undefined) await readSwarmKey(swarmKey)
  const host = flags.host ?? outwardAddress()
  if (host === undefined) throw new InvalidParameterError('this machine has no IPv4 address off loopback: give --host, the address other machines reach it at')
  const text = settingsText({ port: flags.port, ...(flags.host !== undefined ? { announceHost: flags.host } : {}), ...(flags.bootstrap !== undefined ? { bootstrap: flags.bootstrap } : {}), ...(swarmKey !== undefined ? { swarmKey } : {}), ...(flags.http !== undefined ? { http: flags.http } : {}), ...(flags.httpToken !== undefined ? { httpToken: flags.httpToken } : {}) })
  await mkdir(dirname(flags.settings), { recursive: true })
  await writeFile(flags.settings, text, { mode: 0o640, flag: flags.force === true ? 'w' : 'wx' }).catch((err: NodeJS.ErrnoException) => {
    throw new OutputError(err.code === 'EEXIST' ? `${flags.settings} exists; give --force to replace it` : `cannot write ${flags.settings}: ${err.message}`)
  })
  const peerId = peerIdFromPrivateKey(await loadOrCreateKey(flags.dataDir)).toString()
  process.stderr.write(`wrote ${flags.settings}; peer ${peerId} (its key in ${flags.dataDir}). Other machines join with --bootstrap, or TILESWARM_BOOTSTRAP in their settings:\n`)
  process.stdout.write(`${tcpAddressText(host, flags.port)!}/p2p/${peerId}\n`)
}
