import type { Priority } from './constants.ts'

/** A job as an announcement names it: where a worker dials for its units, and whose it is. */
export interface JobRef {
  jobId: string
  coordinator: string
  addrs: string[]
  /** The job's content identity, under which this worker may hold results from an earlier coordinator. */
  jobKey?: string
  /** Who submitted it (a client's peer id, or `web:` and the peer whose page took it): workers share first between submitters. Unnamed jobs share as one. */
  submitter?: string
  /** Its weight in the shares (normal if unsaid). */
  priority?: Priority
}
