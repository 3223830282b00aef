/** A peer's own limits on the jobs its worker takes part in. */
export interface WorkerLimits {
  maxPixels: number
}

/** A tiled job's image as its coordinator read it, and the image its tiles are cut from (after the pipeline's prelude). */
export interface TiledJobShape {
  image: { width: number, height: number }
  cut: { width: number, height: number }
}

export type Admission = { admitted: true } | { admitted: false, reason: string }

/**
 * Whether this peer takes part in a tiled job. A peer's limit is its own to
 * keep, as on its coordinator: neither the image nor what its tiles are cut
 * from may be over it.
 */
export function admitTiledJob (job: TiledJobShape, limits: WorkerLimits): Admission {
  const { image, cut } = job
  if (image.width * image.height > limits.maxPixels || cut.width * cut.height > limits.maxPixels) {
    return { admitted: false, reason: `its image of ${cut.width}x${cut.height} is over this peer's --max-pixels` }
  }
  return { admitted: true }
}
