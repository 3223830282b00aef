import { generateKey } from '@libp2p/pnet'
import { readFile, writeFile } from 'node:fs/promises'
import { SwarmKeyError } from '../common/errors.ts'

/** The go-ipfs swarm.key format that libp2p's pnet reads: three lines, 32 bytes in base16. */
const KEY_FORMAT = /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-fA-F]{64}\n?$/

/** A new swarm key at `path`; an existing file is replaced only with `replace` (keygen's --force). */
export async function writeSwarmKey (path: string, options: { replace?: boolean } = {}): Promise<void> {
  const bytes = new Uint8Array(95)
  generateKey(bytes)
  try {
    await writeFile(path, bytes, { mode: 0o600, flag: options.replace === true ? 'w' : 'wx' })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new SwarmKeyError(code === 'EEXIST' ? `${path} exists; it may be the key of a running swarm (--force replaces it)` : `cannot write ${path}: ${code ?? (err as Error).message}`)
  }
}

export async function readSwarmKey (path: string): Promise<Uint8Array> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    throw new SwarmKeyError(`cannot read the swarm key ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
  if (!KEY_FORMAT.test(bytes.toString('utf8'))) throw new SwarmKeyError(`${path} is not a swarm key (make one with: tileswarm keygen --out ${path})`)
  return new Uint8Array(bytes)
}
