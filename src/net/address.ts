import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { InvalidParameterError } from '../errors.ts'

/** A peer's address from the command line (`--peer`, `--bootstrap`), or a one-line error naming the flag. */
export function parsePeerAddress (text: string, flag: string): Multiaddr {
  let addr: Multiaddr
  try {
    addr = multiaddr(text)
  } catch {
    throw new InvalidParameterError(`Expected a multiaddr for ${flag}, like /ip4/10.0.0.5/tcp/4001/p2p/12D3Koo..., but received '${text}'`)
  }
  if (!addr.protoNames().includes('tcp')) throw new InvalidParameterError(`${flag} ${text} has no /tcp/ port: peers talk over TCP`)
  return addr
}
