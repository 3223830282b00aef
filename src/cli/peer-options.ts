import { resolve } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { DEFAULT_LISTEN_ADDRESS } from '../common/defaults.ts'
import { InvalidParameterError } from '../common/errors.ts'
import { parseAnnounceAddress, parseListenAddress, parsePeerAddress } from '../net/address.ts'
import type { PeerOptions } from '../swarm/options.ts'
import type { ScaleOptions } from '../swarm/scaler.ts'
import { coordinatingSettings } from './coordinating.ts'
import { MB_BYTES, uploadPaceFromFlags, type PeerFlags } from './peer-flags.ts'

/** What the flags alone do not say. */
export interface PeerFlagsContext {
  /** The variables the peer's flags may come from: not passed on to the peers a scale hook starts, which need their own. */
  flagVariables: readonly string[]
}

/**
 * The peer's options from its flags: addresses checked, units made the
 * peer's (megabytes to bytes, seconds to milliseconds), the scale hooks only
 * where one is given. What the flags point to (the swarm key's bytes, the
 * peer ids allowed to submit) is read by the caller, and so are logs and compute.
 */
export function peerOptionsFromFlags (flags: PeerFlags, context: PeerFlagsContext): PeerOptions {
  checkAddresses(flags)
  const scale = scaleOptions(flags, context)
  return {
    listen: flags.listen ?? [DEFAULT_LISTEN_ADDRESS],
    bootstrap: flags.bootstrap ?? [],
    announce: flags.announce,
    dataDir: flags.dataDir,
    slots: flags.slots,
    ...coordinatingSettings(flags),
    resultCacheBytes: flags.resultCacheMb * MB_BYTES,
    inputMemoryBytes: flags.inputMemoryMb * MB_BYTES,
    resultCacheMs: flags.resultCacheS * 1000,
    uploadPace: uploadPaceFromFlags(flags),
    ...(scale !== undefined ? { scale } : {}),
    ...(flags.scaledBy !== undefined ? { scaledBy: flags.scaledBy } : {}),
  }
}

/** Every address and peer id given, refused with the flag's name if it is not one. */
function checkAddresses (flags: PeerFlags): void {
  for (const addr of flags.listen ?? []) parseListenAddress(addr)
  for (const addr of flags.bootstrap ?? []) parsePeerAddress(addr, '--bootstrap')
  for (const addr of flags.announce ?? []) parseAnnounceAddress(addr)
  if (flags.scaledBy !== undefined) {
    try {
      peerIdFromString(flags.scaledBy)
    } catch {
      throw new InvalidParameterError(`--scaled-by takes a peer id (12D3KooW...), not '${flags.scaledBy}'`)
    }
  }
}

/** The scale hooks, where --scale-out or --scale-in is given. */
function scaleOptions (flags: PeerFlags, context: PeerFlagsContext): ScaleOptions | undefined {
  if (flags.scaleOut === undefined && flags.scaleIn === undefined) return undefined
  return {
    ...(flags.scaleOut !== undefined ? { out: flags.scaleOut } : {}),
    ...(flags.scaleIn !== undefined ? { in: flags.scaleIn } : {}),
    outAfterMs: flags.scaleOutAfter * 1000,
    inAfterMs: flags.scaleInAfter * 1000,
    max: flags.scaleMax,
    cooldownMs: flags.scaleCooldown * 1000,
    hookTimeoutMs: flags.scaleHookTimeout * 1000,
    ...(flags.swarmKey !== undefined ? { swarmKeyPath: resolve(flags.swarmKey) } : {}),
    dropEnv: context.flagVariables,
  }
}
