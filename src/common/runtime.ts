import { setFlagsFromString } from 'node:v8'

/**
 * Tiles churn through large buffers. By default V8 runs a full collection
 * for every 64 MB of them, each marking the whole heap: a third of a busy
 * peer's main thread. This lets the limit grow with the heap as a whole.
 * Process-wide; the peer binary and the in-process simulator call it first.
 */
export function tuneHeapForTiles (): void {
  setFlagsFromString('--external-memory-accounted-in-global-limit')
}
