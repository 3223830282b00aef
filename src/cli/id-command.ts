import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Command } from 'commander'
import { loadOrCreateKey } from '../net/identity.ts'
import { DEFAULT_DATA_DIR } from './peer-flags.ts'

/** `tileswarm id`: the peer id kept in a data dir, as --allow-submit lists it. */
export function idCommand (): Command {
  return new Command('id')
    .description('print the peer id kept in a data dir (made if missing): what --allow-submit lists')
    .option('--data-dir <dir>', 'the data dir', DEFAULT_DATA_DIR)
    .action(async (flags: { dataDir: string }) => {
      process.stdout.write(`${peerIdFromPrivateKey(await loadOrCreateKey(flags.dataDir)).toString()}\n`)
    })
}
