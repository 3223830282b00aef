import test from 'ava'
import { multiaddr } from '@multiformats/multiaddr'
import { isLoopback, localAddrs, parsePeerAddress, peerAddressText, tcpAddressText } from '../../src/net/address.ts'

test('isLoopback: hosts and multiaddrs on this machine only', t => {
  for (const local of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '/ip4/127.0.0.1/tcp/4001', '/ip6/::1/tcp/4001/p2p/12D3KooWA', multiaddr('/ip4/127.0.0.5/tcp/0')]) t.true(isLoopback(local), String(local))
  for (const other of ['0.0.0.0', '10.0.0.5', '::', 'example.org', '127.0.0', '/ip4/10.0.0.5/tcp/4001', '/dns4/localhost/tcp/4001', multiaddr('/ip4/192.168.1.2/tcp/1')]) t.false(isLoopback(other), String(other))
})

test('localAddrs: loopback first, then the listening ports on loopback, then the rest', t => {
  const id = '12D3KooWPeer'
  const addrs = [`/ip4/203.0.113.7/tcp/4001/p2p/${id}`, `/ip4/127.0.0.1/tcp/4001/p2p/${id}`]
  t.deepEqual(localAddrs(addrs, ['/ip4/0.0.0.0/tcp/4001', '/ip4/127.0.0.1/tcp/5001', '/ip4/10.0.0.5/tcp/6001', '/ip4/0.0.0.0/tcp/0'], id), [
    `/ip4/127.0.0.1/tcp/4001/p2p/${id}`,
    `/ip4/127.0.0.1/tcp/5001/p2p/${id}`,
    `/ip4/203.0.113.7/tcp/4001/p2p/${id}`,
  ])
})

const ID = '12D3KooWLRPJAA5o6Z6gmCEjiS6Jt7ZxhHjoTrcoF7uGpHXX9bsk'

test('a peer\'s address as people type it: host:port, with /<peer id> if wanted, beside multiaddrs', t => {
  const cases: Array<[string, string]> = [
    ['127.0.0.1:44457', '/ip4/127.0.0.1/tcp/44457'],
    ['localhost:4001', '/ip4/127.0.0.1/tcp/4001'],
    ['[::1]:4001', '/ip6/::1/tcp/4001'],
    ['peer.example.org:4001', '/dns4/peer.example.org/tcp/4001'],
    [`10.0.0.5:4001/${ID}`, `/ip4/10.0.0.5/tcp/4001/p2p/${ID}`],
    [`10.0.0.5:4001/p2p/${ID}`, `/ip4/10.0.0.5/tcp/4001/p2p/${ID}`],
    [`/ip4/10.0.0.5/tcp/4001/p2p/${ID}`, `/ip4/10.0.0.5/tcp/4001/p2p/${ID}`],
    ['/dns4/peer.example.org/tcp/4001', '/dns4/peer.example.org/tcp/4001'],
  ]
  for (const [typed, addr] of cases) {
    t.is(peerAddressText(typed), addr, typed)
    t.is(parsePeerAddress(typed, '--peer').toString(), addr, typed)
  }
  // A loopback host:port is known to be this machine's, as its multiaddr is.
  t.true(isLoopback(parsePeerAddress('localhost:4001', '--peer')))
})

test('a bad address is refused in one line naming the flag and what it takes', t => {
  for (const bad of ['foo', '10.0.0.5', '10.0.0.5:0', '10.0.0.5:65536', '10.0.0.5:port', '[10.0.0.5]:4001', 'a b:4001', 'http://10.0.0.5:4001']) {
    const err = t.throws(() => parsePeerAddress(bad, '--peer'), { name: 'InvalidParameterError' }, bad)
    t.regex(err.message, /^Expected a multiaddr for --peer, like \/ip4\/10\.0\.0\.5\/tcp\/4001\/p2p\/12D3Koo\.\.\., or host:port \(10\.0\.0\.5:4001, with \/<peer id> after it to have the peer checked\), but received '/, bad)
    t.false(err.message.includes('\n'))
  }
  t.throws(() => parsePeerAddress('10.0.0.5:4001/notanid', '--bootstrap'), { message: '--bootstrap 10.0.0.5:4001/notanid: \'notanid\' is not a peer id (tileswarm id prints one: 12D3KooW...)' })
  t.throws(() => parsePeerAddress('/ip4/10.0.0.5', '--peer'), { message: /has no \/tcp\/ port/ })
  t.throws(() => parsePeerAddress('/ip4/10.0.0.500/tcp/1', '--peer'), { message: /^Expected a multiaddr for --peer/ })
})

test('tcpAddressText: an IP or a name and a port', t => {
  t.is(tcpAddressText('10.0.0.5', 4001), '/ip4/10.0.0.5/tcp/4001')
  t.is(tcpAddressText('2001:db8::1', 4001), '/ip6/2001:db8::1/tcp/4001')
  t.is(tcpAddressText('vm-1.internal', 4001), '/dns4/vm-1.internal/tcp/4001')
  t.is(tcpAddressText('not a host', 4001), undefined)
})
