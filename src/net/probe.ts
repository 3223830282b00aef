import { connect } from 'node:net'
import type { Multiaddr } from '@multiformats/multiaddr'

/** What answers at an address, as far as a few bytes tell. */
export type ProbeResult =
  | { kind: 'libp2p' }
  | { kind: 'private-swarm' }
  | { kind: 'other', said: string }
  | { kind: 'silent' }
  | { kind: 'unreachable', code: string }

/** multistream-select's opening line, length-prefixed: what any libp2p peer answers in kind. */
const MULTISTREAM = Buffer.concat([Buffer.from([19]), Buffer.from('/multistream/1.0.0\n')])
/** A pre-shared-key (pnet) peer opens with its 24-byte nonce, before anything else. */
const PNET_NONCE_BYTES = 24
/** Enough of what answers to judge it, and of what it said to show. */
const READ_BYTES = 4096
const SAID_CHARS = 80

/**
 * After a libp2p handshake failed, looks at what is at the address with a
 * plain TCP connection: an open libp2p peer answers multistream-select; a
 * private swarm's peer sends its random nonce first; anything else (a web
 * server, ssh) says something readable or nothing. Bounded by `timeoutMs`.
 */
export async function probe (address: Multiaddr, timeoutMs: number): Promise<ProbeResult> {
  let host: string, port: number
  try {
    ({ address: host, port } = address.nodeAddress())
  } catch {
    return { kind: 'unreachable', code: 'not a TCP address' }
  }
  return await new Promise(resolve => {
    const socket = connect({ host, port })
    let got = Buffer.alloc(0)
    const finish = (result: ProbeResult): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(result)
    }
    const judge = (final: boolean): void => {
      if (got.length >= MULTISTREAM.length && got.subarray(0, MULTISTREAM.length).equals(MULTISTREAM)) return finish({ kind: 'libp2p' })
      const text = got.toString('latin1')
      const printable = /^[\x09\x0a\x0d\x20-\x7e]+$/.test(text)
      if (got.length > 0 && printable && (final || text.includes('\n'))) return finish({ kind: 'other', said: text.split(/\r?\n/)[0]!.slice(0, SAID_CHARS) })
      if (got.length >= PNET_NONCE_BYTES && !printable) return finish({ kind: 'private-swarm' })
      if (final) finish(got.length === 0 ? { kind: 'silent' } : { kind: 'other', said: `${got.length} bytes of binary` })
    }
    const timer = setTimeout(() => { judge(true) }, timeoutMs)
    socket.on('connect', () => { socket.write(MULTISTREAM) })
    socket.on('data', data => { got = Buffer.concat([got, data]).subarray(0, READ_BYTES); judge(false) })
    socket.on('end', () => { judge(true) })
    socket.on('error', (err: NodeJS.ErrnoException) => { if (got.length > 0) judge(true); else finish({ kind: 'unreachable', code: err.code ?? err.message }) })
  })
}
