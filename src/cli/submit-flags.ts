import { availableParallelism } from 'node:os'
import { type Command, Option } from 'commander'
import { collect, collectList, connectTimeoutOption, integerOption, once, priorityOption, verifyOption } from './args.ts'
import { DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_QUALITY, MAX_SLOTS, MAX_TILE_SIZE, MIN_TILE_SIZE } from '../common/defaults.ts'
import { DEFAULT_TILE_ABOVE_MP } from '../client/batch.ts'
import type { SubmitFlags } from '../client/options.ts'
import type { SwarmSubmitOptions } from '../client/submit.ts'
import type { OutputFormat } from '../imaging/index.ts'
import { OUTPUT_FORMATS, type Priority } from '../protocol/constants.ts'
import { DEFAULT_VERIFY_FLOOR, type VerifyLevel } from '../protocol/verify-level.ts'
import { loadOrCreateKey } from '../net/identity.ts'
import { readSwarmKey } from '../net/swarm-key.ts'

/** The submit command's flags, as commander parses them (defaults filled in). */
export interface SubmitCliFlags extends Omit<SubmitFlags, 'imagePath'> {
  imagePath?: string[]
  /** The Python prototype's spellings of --image-path and --out. */
  image_path?: string[]
  output_path?: string
  local?: boolean
  peer?: string[]
  listOps?: boolean
  json?: boolean
  debug?: boolean
  maxPixels: number
  maxUploadBytes: number
  threads: number
  tileSize?: number
  verify?: VerifyLevel
  priority?: Priority
  connectTimeoutMs: number
  swarmKey?: string
  dataDir?: string
  recursive?: boolean
  format?: OutputFormat
  skipExisting?: boolean
  tileAboveMp: number
}

/** Adds submit's flags to `command`, in the order its help lists them. */
export function withSubmitFlags (command: Command): Command {
  return command
    .option('--peer <address>', 'any peer of the swarm (host:port, host:port/<peer id> or a multiaddr; default: the peer running on this machine); it coordinates the job; repeat for more entry points (the job moves on if one is full or lost)', collectList)
    .option('--local', 'process here, whole image, no swarm: the reference output')
    .option('--task <op>', 'an operation (the Python prototype\'s flag); repeat for a pipeline', collect)
    .option('--op <op>', 'same as --task', collect)
    .option('--ops <pipeline>', 'a whole pipeline: "blur:sigma=2,sobel"', once('--ops'))
    .option('-i, --image-path <path>', 'input image (JPEG, PNG, WebP, TIFF, AVIF, HEIF, GIF first frame); repeat it, or give a folder or a quoted glob, for a batch', collect)
    .addOption(new Option('--image_path <path>', 'same as --image-path (the Python prototype\'s spelling)').argParser(collect))
    .option('-o, --out <path>', 'output file (.jpg .png .webp .tif .avif picks the format); for a batch, a folder (the input tree mirrored) or a .zip', once('--out'))
    .option('-r, --recursive', 'a folder\'s subfolders too (batch)')
    .addOption(new Option('--format <format>', 'output format of a batch (default: each image keeps its own; GIF and HEIF become PNG)').choices(OUTPUT_FORMATS))
    .option('--skip-existing', 'leave out images whose output exists: resumes an interrupted batch (written to a folder, not a .zip)')
    .option('--tile-above-mp <n>', 'in a batch, images over this many megapixels are tiled across the swarm, one job each; smaller ones go whole to one peer each', integerOption('--tile-above-mp', 1, 100_000), DEFAULT_TILE_ABOVE_MP)
    .addOption(new Option('--output_path <file>', 'same as --out').hideHelp().argParser(once('--output_path')))
    .option('--quality <1-100>', `JPEG/WebP/AVIF quality (default ${DEFAULT_QUALITY})`, once('--quality'))
    .option('--strip', 'drop the photo\'s EXIF, ICC profile and XMP, which outputs keep by default (a TIFF keeps no EXIF); a photo with a profile is converted to sRGB by it first')
    .option('--max-pixels <n>', 'refuse images with more pixels, before decoding (--local; a peer applies its own)', integerOption('--max-pixels'), DEFAULT_MAX_PIXELS)
    .option('--max-upload-bytes <n>', 'refuse larger input files', integerOption('--max-upload-bytes'), DEFAULT_MAX_UPLOAD_BYTES)
    .option('--threads <n>', 'libvips threads for --local', integerOption('--threads', 1, MAX_SLOTS), availableParallelism())
    .option('--tile-size <px>', 'tile edge (default: the coordinating peer\'s)', (value: string, previous: unknown) => integerOption('--tile-size', MIN_TILE_SIZE, MAX_TILE_SIZE)(once('--tile-size')(value, previous)))
    .option('--verify <share|all|off>', `catch wrong tiles from faulty or lying peers: a share of each peer's tiles is computed again by another and compared; a peer's first always, then fewer as its checks pass, never under this share (default ${DEFAULT_VERIFY_FLOOR}; 0: only new peers'); all: every tile of other peers twice (the coordinator trusts its own); off: none. Tiled jobs only: a batch's whole images are not checked`, (value: string, previous: unknown) => verifyOption(once('--verify')(value, previous)))
    .option('--priority <high|normal|low>', 'how the swarm\'s workers weigh this job against others running: shares of 4:2:1 (default normal); a peer refuses high unless its operator allows you (--allow-priority)', (value: string, previous: unknown) => priorityOption(once('--priority')(value, previous)))
    .addOption(connectTimeoutOption())
    .option('--swarm-key <file>', 'the private swarm\'s key (default without --peer: the one the peer on this machine runs with)', once('--swarm-key'))
    .option('--data-dir <dir>', 'keep this client\'s identity there, for peers that use --allow-submit (tileswarm id)', once('--data-dir'))
    .option('--list-ops', 'print every operation with its parameters, and exit')
    .option('--json', 'machine-readable events, one JSON object per line')
    .option('--debug', 'stack traces on errors')
}

/** How submit reaches the swarm, from its flags: one image or a batch alike. */
export async function swarmOptions (flags: SubmitCliFlags, peer: string[]): Promise<SwarmSubmitOptions> {
  return {
    peer,
    swarmKey: flags.swarmKey !== undefined ? await readSwarmKey(flags.swarmKey) : undefined,
    privateKey: flags.dataDir !== undefined ? await loadOrCreateKey(flags.dataDir) : undefined,
    tileSize: flags.tileSize,
    ...(flags.verify !== undefined ? { verify: flags.verify } : {}),
    ...(flags.priority !== undefined ? { priority: flags.priority } : {}),
    dialTimeoutMs: flags.connectTimeoutMs,
    maxUploadBytes: flags.maxUploadBytes,
  }
}
