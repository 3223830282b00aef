import type { Step } from '../imaging/index.ts'
import type { BatchPlan } from './batch-plan.ts'
import type { RosterEvent } from './roster.ts'

/** A batch's words: what is asked, what the client tells as it goes, and what it came to. */

export type BatchEvent =
  /** `leftOut`: files not taken (not images, or hidden); `folders`: subfolders not taken (no -r). */
  | { event: 'batch', images: number, skipped: number, whole: number, tiled: number, leftOut: string[], folders: string[] }
  | { event: 'connected', peer: string, client: string }
  | { event: 'note', message: string }
  | { event: 'started', jobId: string }
  | { event: 'image', input: string, output: string, width: number, height: number, bytes: number, by: string, recovered: boolean }
  | { event: 'image-failed', input: string, name: string, message: string }
  | { event: 'image-skipped', input: string, output: string }
  /** The images done (or failed) of the images to do, the megapixels in, and the peers that have delivered. */
  | { event: 'batch-progress', done: number, failed: number, total: number, megapixels: number, workers: number }
  /** A large image goes through the swarm tiled: its tiles' progress. */
  | { event: 'tiles', input: string, done: number, total: number }
  | RosterEvent
  | { event: 'resumed', coordinator: string, on: string, images: number }
  | { event: 'batch-done', done: number, skipped: number, failed: number, ms: number, megapixels: number, failures: Array<{ input: string, message: string }> }

export interface BatchSummary {
  done: number
  skipped: number
  failures: Array<{ input: string, message: string }>
  ms: number
  megapixels: number
}

export interface BatchRequest {
  plan: BatchPlan
  steps: Step[]
  quality: number
  /** Drop the inputs' EXIF, ICC profiles and XMP (kept by default). */
  strip?: boolean
  skipExisting: boolean
}
