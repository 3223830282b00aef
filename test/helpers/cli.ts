export { PEER_JS, runPeerJs as runCli, type CliResult } from '../../sim/processes.ts'
