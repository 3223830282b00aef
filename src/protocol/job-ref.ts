/** A job as an announcement names it: where a worker dials for its units. */
export interface JobRef {
  jobId: string
  coordinator: string
  addrs: string[]
  /** The job's content identity, under which this worker may hold results from an earlier coordinator. */
  jobKey?: string
}
