import { isIP } from 'node:net'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { InvalidParameterError } from '../common/errors.ts'

/** The /p2p/ component's code in a multiaddr. */
const P2P_CODE = 421

/** The forms a person types beside multiaddrs: host:port, [v6]:port, each with an optional /<peer id>. */
const HOST_PORT = /^(?:\[([^\]]+)\]|([^/:[\]]+)):(\d+)(?:\/(?:p2p\/)?([^/]+))?$/

/** A host (an IP address or a name) and a TCP port as a multiaddr's text; undefined for a host that is neither. */
export function tcpAddressText (host: string, port: number | string): string | undefined {
  // localhost as an IP: a loopback address is known to be this machine's (isLoopback) without a lookup.
  if (host === 'localhost') return `/ip4/127.0.0.1/tcp/${port}`
  const version = isIP(host)
  if (version !== 0) return `/ip${version}/${host}/tcp/${port}`
  return /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(host) ? `/dns4/${host}/tcp/${port}` : undefined
}

/**
 * A peer's address as a multiaddr's text: a multiaddr is kept as given;
 * `10.0.0.5:4001`, `peer.example.org:4001`, `[::1]:4001` and any of them
 * with `/<peer id>` become /ip4/, /dns4/, /ip6/ ones. Undefined for neither.
 */
export function peerAddressText (text: string): string | undefined {
  if (text.startsWith('/')) return text
  const m = HOST_PORT.exec(text.trim())
  if (m === null || Number(m[3]) < 1 || Number(m[3]) > 65535 || (m[1] !== undefined && isIP(m[1]) !== 6)) return undefined
  const addr = tcpAddressText(m[1] ?? m[2]!, m[3]!)
  return addr === undefined ? undefined : `${addr}${m[4] !== undefined ? `/p2p/${m[4]}` : ''}`
}

/**
 * A peer's address from the command line (`--peer`, `--bootstrap`): a
 * multiaddr, or host:port with an optional /<peer id>; else a one-line error
 * naming the flag.
 */
export function parsePeerAddress (text: string, flag: string, example = '/ip4/10.0.0.5/tcp/4001/p2p/12D3Koo...'): Multiaddr {
  return parseTcpAddress(text, flag, { example, typed: true })
}

/** A TCP multiaddr (or, `typed`, host:port as well), or a one-line error naming the flag. */
function parseTcpAddress (text: string, flag: string, { example, typed }: { example: string, typed: boolean }): Multiaddr {
  const asMultiaddr = typed ? peerAddressText(text) : text
  if (asMultiaddr === undefined) throw new InvalidParameterError(`Expected a multiaddr for ${flag}, like ${example}, or host:port (10.0.0.5:4001, with /<peer id> after it to have the peer checked), but received '${text}'`)
  let addr: Multiaddr
  try {
    addr = multiaddr(asMultiaddr)
    // Parsing is lazy: out-of-range parts only show when the address is read.
    addr.toString()
    addr.protoNames()
  } catch (err) {
    throw new InvalidParameterError(`Expected a multiaddr for ${flag}, like ${example}, but received '${text}' (${(err as Error).message})`)
  }
  // getPeerId() says null for an id that does not parse: parse it here, to say so.
  for (const [code, value] of addr.stringTuples()) {
    if (code !== P2P_CODE || value === undefined) continue
    try {
      peerIdFromString(value)
    } catch {
      throw new InvalidParameterError(`${flag} ${text}: '${value}' is not a peer id (tileswarm id prints one: 12D3KooW...)`)
    }
  }
  if (!addr.protoNames().includes('tcp')) throw new InvalidParameterError(`${flag} ${text} has no /tcp/ port: peers talk over TCP`)
  return addr
}

/** An address to listen on: an IP address (not a name) and a TCP port. */
export function parseListenAddress (text: string): Multiaddr {
  const addr = parseTcpAddress(text, '--listen', { example: '/ip4/0.0.0.0/tcp/4001', typed: false })
  const [first] = addr.protoNames()
  if (first !== 'ip4' && first !== 'ip6') throw new InvalidParameterError(`--listen ${text} must start with /ip4/ or /ip6/ and an address of this machine (0.0.0.0 for all)`)
  return addr
}

/** --announce: where others should dial this peer (a public address or name), a TCP address. */
export function parseAnnounceAddress (text: string): Multiaddr {
  const addr = parseTcpAddress(text, '--announce', { example: '/ip4/203.0.113.7/tcp/4001', typed: false })
  if (!addr.protoNames().includes('tcp')) throw new InvalidParameterError(`--announce ${text} must be a TCP address, like /ip4/203.0.113.7/tcp/4001 or /dns4/peer.example.org/tcp/4001`)
  if (addr.getPeerId() !== null) throw new InvalidParameterError(`--announce ${text}: leave out /p2p/ (the peer adds its own id)`)
  return addr
}

/**
 * On this machine only: a host (`127.0.0.1`, `::1`, `localhost`, as --http
 * takes it) or a multiaddr (`/ip4/127.0.0.1/tcp/4001`).
 */
export function isLoopback (address: string | Multiaddr): boolean {
  const text = address.toString()
  const host = text.startsWith('/') ? /^\/ip[46]\/([^/]+)/.exec(text)?.[1] : text
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host ?? '')
}

/**
 * Where a process on this machine reaches a peer (the web page's jobs):
 * loopback first, from its listening ports too, as announced addresses
 * (--announce) may not route from here.
 */
export function localAddrs (addrs: string[], listen: string[], peerId: string): string[] {
  const fromListen = listen.flatMap(l => {
    const m = /^\/ip4\/([^/]+)\/tcp\/(\d+)$/.exec(l)
    return m !== null && (m[1] === '0.0.0.0' || isLoopback(m[1]!)) && m[2] !== '0' ? [`/ip4/127.0.0.1/tcp/${m[2]}/p2p/${peerId}`] : []
  })
  return [...new Set([...addrs.filter(a => isLoopback(a)), ...fromListen, ...addrs.filter(a => !isLoopback(a))])]
}
