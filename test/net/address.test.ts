import test from 'ava'
import { multiaddr } from '@multiformats/multiaddr'
import { isLoopback, localAddrs } from '../../src/net/address.ts'

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
