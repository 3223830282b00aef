import { createRequire } from 'node:module'
import type Sharp from 'sharp'

const require = createRequire(import.meta.url)
let sharp: typeof Sharp | undefined

/**
 * sharp, loaded on first use: libvips and its bindings take a tenth of a
 * second to load, which a submit to the swarm (that decodes nothing) or
 * `--help` need not pay. One instance for the whole process.
 */
export function sharpLib (): typeof Sharp {
  sharp ??= require('sharp') as typeof Sharp
  return sharp
}
