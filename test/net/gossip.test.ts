import test from 'ava'
import { gossipCopyId } from '../../src/net/node.ts'

test('a gossip copy is known by every byte of it: the same message, the same id; any field changed or shifted, another', t => {
  const msg = { from: Buffer.from('peer'), seqno: Buffer.from([1, 2]), topic: 'tileswarm/jobs/3', data: Buffer.from('ab'), signature: Buffer.from('c'), key: Buffer.from('k') }
  const id = gossipCopyId(msg)
  t.is(gossipCopyId({ ...msg, data: Buffer.from('ab') }), id)
  t.not(gossipCopyId({ ...msg, data: Buffer.from('aB') }), id)
  t.not(gossipCopyId({ ...msg, signature: Buffer.from('d') }), id)
  t.not(gossipCopyId({ ...msg, seqno: Buffer.from([1, 3]) }), id)
  t.not(gossipCopyId({ ...msg, topic: 'tileswarm/peers/3' }), id)
  t.not(gossipCopyId({ ...msg, data: Buffer.from('a'), signature: Buffer.from('bc') }), id, 'a byte moved from one field to the next')
  t.not(gossipCopyId({ ...msg, key: undefined }), id)
})
