import { availableParallelism } from 'node:os'
import { Command, InvalidArgumentError, Option } from 'commander'
import { isUserFacing, oneLine } from './errors.ts'
import { describeOperations, DEFAULT_MAX_PIXELS } from './imaging/index.ts'
import { runLocal, DEFAULT_MAX_UPLOAD_BYTES } from './client/local.ts'
import { requestFromFlags, type SubmitFlags } from './client/options.ts'

function positiveInt (name: string, min = 1, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`Expected integer between ${min} and ${max} for ${name} but received '${value}'`)
    return n
  }
}

let debug = false

function fail (err: unknown): never {
  if (debug || !isUserFacing(err)) {
    process.stderr.write(`tileswarm: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  } else {
    process.stderr.write(`tileswarm: ${oneLine(err.message)}\n`)
  }
  process.exit(1)
}

interface SubmitCliOptions extends SubmitFlags {
  local?: boolean
  peer?: string
  listOps?: boolean
  json?: boolean
  debug?: boolean
  maxPixels: number
  maxUploadBytes: number
  threads: number
  imagePathUnderscore?: string
  outputPath?: string
}

function submitCommand (): Command {
  return new Command('submit')
    .description('process an image: in this process (--local) or on a swarm (--peer)')
    .option('--local', 'process here, whole image, no swarm: the reference output')
    .option('--task <op>', 'an operation, the prototype\'s flag; repeat for a pipeline', (v: string, prev: string[] = []) => [...prev, v])
    .option('--op <op>', 'same as --task', (v: string, prev: string[] = []) => [...prev, v])
    .option('--ops <pipeline>', 'a whole pipeline: "blur:sigma=2,sobel"')
    .option('-i, --image-path <file>', 'input image (JPEG, PNG, WebP, TIFF, AVIF, GIF first frame)')
    .addOption(new Option('--image_path <file>', 'the prototype\'s spelling of --image-path').hideHelp())
    .option('-o, --out <file>', 'output file; .jpg .png .webp .tif .avif picks the format')
    .addOption(new Option('--output_path <file>', 'same as --out').hideHelp())
    .option('--quality <1-100>', 'JPEG/WebP/AVIF quality', '90')
    .option('--max-pixels <n>', 'refuse images with more pixels, before decoding', positiveInt('--max-pixels'), DEFAULT_MAX_PIXELS)
    .option('--max-upload-bytes <n>', 'refuse larger input files', positiveInt('--max-upload-bytes'), DEFAULT_MAX_UPLOAD_BYTES)
    .option('--threads <n>', 'libvips threads for --local', positiveInt('--threads', 1, 1024), availableParallelism())
    .option('--list-ops', 'print every operation with its parameters, and exit')
    .option('--json', 'machine-readable events, one JSON object per line')
    .option('--debug', 'stack traces on errors')
    .action(async (opts: SubmitCliOptions & { image_path?: string, output_path?: string }) => {
      debug = opts.debug === true
      if (opts.listOps === true) {
        process.stdout.write(describeOperations() + '\n')
        return
      }
      const flags: SubmitFlags = { ...opts, imagePath: opts.imagePath ?? opts.image_path, out: opts.out ?? opts.output_path }
      const request = requestFromFlags(flags)
      if (opts.local !== true) {
        throw new InvalidArgumentError('submit needs --local (process here) or --peer <multiaddr> (process on a swarm)')
      }
      const emit = (event: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(event) + '\n') }
      const result = await runLocal(request, {
        maxPixels: opts.maxPixels,
        maxUploadBytes: opts.maxUploadBytes,
        threads: opts.threads,
        log: line => opts.json === true ? emit({ event: 'log', message: line }) : process.stderr.write(line + '\n'),
      })
      if (opts.json === true) emit({ event: 'done', output: request.output, ...result })
      else process.stdout.write(`wrote ${request.output} (${result.width}x${result.height}, ${result.bytes} bytes) in ${(result.ms / 1000).toFixed(2)} s\n`)
    })
}

export function buildProgram (): Command {
  const program = new Command('tileswarm')
    .description('A peer-to-peer image processing swarm. Run a peer on every machine; submit images to any of them.')
    .version('0.1.0')
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ outputError: (str, write) => write(`tileswarm: ${str.replace(/^error: /, '')}`) })
  program.addCommand(submitCommand())
  return program
}

export async function main (argv: string[]): Promise<void> {
  debug = argv.includes('--debug')
  try {
    await buildProgram().parseAsync(argv)
  } catch (err) {
    if (err instanceof InvalidArgumentError) {
      process.stderr.write(`tileswarm: ${err.message}\n`)
      process.exit(1)
    }
    fail(err)
  }
}
