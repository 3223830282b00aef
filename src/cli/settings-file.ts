import { DEFAULT_LISTEN_ADDRESS } from '../common/defaults.ts'
import { tcpAddressText } from '../net/address.ts'
import { flagVariable } from './env.ts'

/** Where the systemd unit (deploy/tileswarm.service) reads its peer's settings. */
export const SERVICE_SETTINGS_FILE = '/etc/tileswarm/tileswarm.env'

/** The port a peer listens on unless told (DEFAULT_LISTEN_ADDRESS's). */
export const DEFAULT_PORT = Number(/\/tcp\/(\d+)$/.exec(DEFAULT_LISTEN_ADDRESS)![1])

/** What `tileswarm init` writes down. */
export interface Settings {
  port: number
  /** Announced to the swarm (--announce): given with --host, for a machine behind NAT. */
  announceHost?: string
  bootstrap?: string[]
  swarmKey?: string
  http?: string
  httpToken?: string
}

/** A line setting `flag`'s variable, or the same commented out with what goes there. */
function line (flag: string, value: string | undefined, example: string): string {
  return value !== undefined ? `${flagVariable(flag)}=${value}` : `# ${flagVariable(flag)}=${example}`
}

/** The settings file: the peer's flags as TILESWARM_* variables, in the shape deploy/tileswarm.env has. */
export function settingsText (s: Settings): string {
  const host = s.announceHost
  return [
    '# Settings of the tileswarm peer service (deploy/tileswarm.service reads them), written by `tileswarm init`.',
    '# Any flag of `tileswarm peer --help`, as TILESWARM_<FLAG> (several addresses: comma-separated). See docs/deploy.md.',
    line('listen', `/ip4/0.0.0.0/tcp/${s.port}`, ''),
    line('announce', host === undefined ? undefined : tcpAddressText(host, s.port), '/ip4/203.0.113.7/tcp/4001'),
    '# The swarm\'s first peer (its `tileswarm init` printed this address); the first peer itself has none.',
    line('bootstrap', s.bootstrap?.join(','), '/ip4/10.0.0.5/tcp/4001/p2p/12D3KooW...'),
    '# A private swarm: the same key file (tileswarm keygen) on every peer and client.',
    line('swarm-key', s.swarmKey, '/etc/tileswarm/swarm.key'),
    '# The web page and /metrics; off loopback they need a token of at least 16 characters',
    '# (openssl rand -hex 16), or with a swarm key one derived from it (tileswarm http-token --swarm-key <file>):',
    line('http', s.http, '0.0.0.0:8080'),
    line('http-token', s.httpToken, ''),
    'TILESWARM_LOG_FORMAT=json',
    'TILESWARM_LOG_LEVEL=info',
    '',
  ].join('\n')
}
