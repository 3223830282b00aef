import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import { Uint8ArrayList } from 'uint8arraylist'

/** Below this, noise's own choice (a wasm cipher) is the faster one. */
const NATIVE_MIN_BYTES = 1200
const TAG_BYTES = 16

/**
 * A session's cipher key, imported into OpenSSL once: noise's default hands
 * the raw key to every message's cipher, and importing it again each time
 * took about a tenth of a peer's CPU moving tiles' pixels. Keys are the cipher
 * states' own arrays, kept for the life of a connection's direction.
 */
const imported = new WeakMap<Uint8Array, KeyObject>()
function keyOf (k: Uint8Array): KeyObject {
  let key = imported.get(k)
  if (key === undefined) {
    key = createSecretKey(k)
    imported.set(k, key)
  }
  return key
}

function flat (data: Uint8Array | Uint8ArrayList): Uint8Array {
  return data instanceof Uint8Array ? data : data.subarray()
}

/** Noise's default crypto with ChaCha20-Poly1305 on keys imported once (the same bytes on the wire). */
export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
    if (plaintext.byteLength < NATIVE_MIN_BYTES) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
    const cipher = createCipheriv('chacha20-poly1305', keyOf(k), nonce, { authTagLength: TAG_BYTES })
    cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
    const body = cipher.update(flat(plaintext))
    const final = cipher.final()
    // A list, not a concatenation: noise prefixes it with its length and hands it on as a list.
    return new Uint8ArrayList(body, final, cipher.getAuthTag())
  },
  chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
    if (ciphertext.byteLength < NATIVE_MIN_BYTES) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
    const sealed = flat(ciphertext)
    const decipher = createDecipheriv('chacha20-poly1305', keyOf(k), nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(ad, { plaintextLength: sealed.byteLength - TAG_BYTES })
    decipher.setAuthTag(sealed.subarray(sealed.byteLength - TAG_BYTES))
    const body = decipher.update(sealed.subarray(0, sealed.byteLength - TAG_BYTES))
    const final = decipher.final()
    return final.byteLength > 0 ? Buffer.concat([body, final]) : body
  },
}
