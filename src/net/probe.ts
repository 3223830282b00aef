import { connect } from 'node:net'
import type { Multiaddr } from '@multiformats/multiaddr'
import { PROBE_READ_BYTES, PROBE_TIMEOUT_MS } from '../common/defaults.ts'
import { oneLine } from '../common/errors.ts'

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
    socket.on('data', data => { got = Buffer.concat([got, data]).subarray(0, PROBE_READ_BYTES); judge(false) })
    socket.on('end', () => { judge(true) })
    socket.on('error', (err: NodeJS.ErrnoException) => { if (got.length > 0) judge(true); else finish({ kind: 'unreachable', code: err.code ?? err.message }) })
  })
}

/** Why a dial failed, in words a user can act on: a plain look at the address says what is there. */
export async function explainDialFailure (address: Multiaddr, err: Error, options: { swarmKey?: Uint8Array, dialTimeoutMs: number }): Promise<string> {
  if (err.name === 'WrongPeerError') return err.message
  const keyHint = options.swarmKey === undefined ? 'the swarm is private: pass its --swarm-key' : 'check that --swarm-key is the swarm\'s key'
  const seen = await probe(address, Math.min(PROBE_TIMEOUT_MS, options.dialTimeoutMs))
  switch (seen.kind) {
    case 'unreachable': return `nothing answers there (${seen.code})`
    case 'private-swarm': return `a private swarm's peer answers there, and the handshake failed: ${keyHint}`
    case 'libp2p': return options.swarmKey === undefined
      ? `a libp2p peer answers there, but the connection failed: ${oneLine(err.message)}`
      : 'the peer there runs an open swarm: drop --swarm-key'
    case 'other': return `something other than a tileswarm peer answers there (it said '${seen.said}')`
    case 'silent': return err.name === 'TimeoutError' || err.name === 'AbortError'
      ? `no answer within ${options.dialTimeoutMs / 1000} s: something accepts connections there but does not speak (${keyHint}, or check the address)`
      : `something accepts connections there but does not speak libp2p (${oneLine(err.message)})`
  }
}
