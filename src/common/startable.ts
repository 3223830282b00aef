/**
 * A long-lived part of a peer (js-libp2p's Startable): started once, stopped
 * once, both async. `stop` ends what `start` began; a part whose stop waits
 * on others (coordinators taking leases back, clients told) bounds the wait
 * with an AbortSignal of its own.
 */
export interface Startable {
  start: () => Promise<void>
  /** Told before any part stops, while all still run: a part whose stop takes long begins it here, beside the others'. */
  beforeStop?: () => void
  stop: () => Promise<void>
}

/** Starts the parts in order; if one fails, those already started are stopped, last first, and its error thrown. */
export async function startAll (parts: readonly Startable[]): Promise<void> {
  for (const [i, part] of parts.entries()) {
    try {
      await part.start()
    } catch (err) {
      await stopAll(parts.slice(0, i)).catch(() => {})
      throw err
    }
  }
}

/** Stops the parts, last started first, each once the one after it has stopped; one failing does not keep the rest running (the first error is thrown). */
export async function stopAll (parts: readonly Startable[]): Promise<void> {
  const reversed = parts.toReversed()
  for (const part of reversed) part.beforeStop?.()
  let failure: { err: unknown } | undefined
  for (const part of reversed) {
    try {
      await part.stop()
    } catch (err) {
      failure ??= { err }
    }
  }
  if (failure !== undefined) throw failure.err
}
