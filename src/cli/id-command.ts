import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Command } from 'commander'
import { loadOrCreateKey } from '../net/identity.ts'
import { fromEnvironment } from './env-options.ts'
import { DEFAULT_DATA_DIR } from './peer-flags.ts'

/** `tileswarm id`: the peer id kept in a data dir, as --allow-submit lists it. */
export function idCommand (): Command {
  return fromEnvironment(new Command('id')
    .description('print the peer id kept in a data dir (its key made if missing): what --allow-submit lists, and the /p2p/<id> of a bootstrap address, known before the peer first starts')
    .option('--data-dir <dir>', 'the data dir', DEFAULT_DATA_DIR)
    .action(async (flags: { dataDir: string }) => {
      process.stdout.write(`${peerIdFromPrivateKey(await loadOrCreateKey(flags.dataDir)).toString()}\n`)
    }), ['data-dir'])
}
