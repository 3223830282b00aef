import type { PeerOptions } from '../swarm/options.ts'
import type { Reporting } from './report.ts'

/** Compute a peer runs with; the simulator's emulated hosts swap in a cost model. */
export type PeerCompute = Pick<PeerOptions, 'decodeInput' | 'process'>

/** What every command is built with. */
export interface CliContext {
  reporting: Reporting
  compute: PeerCompute
}
