import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { InvalidParameterError } from '../common/errors.ts'

/** A peer's address from the command line (`--peer`, `--bootstrap`), or a one-line error naming the flag. */
export function parsePeerAddress (text: string, flag: string, example = '/ip4/10.0.0.5/tcp/4001/p2p/12D3Koo...'): Multiaddr {
  let addr: Multiaddr
  try {
    addr = multiaddr(text)
    // Parsing is lazy: out-of-range parts only show when the address is read.
    addr.toString()
    addr.protoNames()
  } catch (err) {
    throw new InvalidParameterError(`Expected a multiaddr for ${flag}, like ${example}, but received '${text}' (${(err as Error).message})`)
  }
  if (!addr.protoNames().includes('tcp')) throw new InvalidParameterError(`${flag} ${text} has no /tcp/ port: peers talk over TCP`)
  return addr
}

/** An address to listen on: an IP address (not a name) and a TCP port. */
export function parseListenAddress (text: string): Multiaddr {
  const addr = parsePeerAddress(text, '--listen', '/ip4/0.0.0.0/tcp/4001')
  const [first] = addr.protoNames()
  if (first !== 'ip4' && first !== 'ip6') throw new InvalidParameterError(`--listen ${text} must start with /ip4/ or /ip6/ and an address of this machine (0.0.0.0 for all)`)
  return addr
}

/** --announce: where others should dial this peer (a public address or name), a TCP address. */
export function parseAnnounceAddress (text: string): Multiaddr {
  const addr = parsePeerAddress(text, '--announce', '/ip4/203.0.113.7/tcp/4001')
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
