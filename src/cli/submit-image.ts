import { stat } from 'node:fs/promises'
import { InvalidArgumentError } from 'commander'
import { runLocal } from '../client/local.ts'
import { requestFromFlags, type SubmitFlags } from '../client/options.ts'
import { progressReporter, verifyResultText } from '../client/progress.ts'
import { submitToSwarm } from '../client/submit.ts'
import { InvalidParameterError } from '../common/errors.ts'
import { shortId } from '../common/log.ts'
import { Interruption } from './interruption.ts'
import type { Reporting } from './report.ts'
import { swarmOptions, type SubmitCliFlags } from './submit-flags.ts'

/** One image, to its output file: on the swarm (--peer) or here (--local). */
export async function submitImage (flags: SubmitCliFlags, inputs: string[], out: string | undefined, reporting: Reporting): Promise<void> {
  if (inputs.length === 1 && await stat(inputs[0]!).then(() => false, () => true)) throw new InvalidParameterError(`cannot read ${inputs[0]}: no such file or folder`)
  if (flags.recursive === true) throw new InvalidArgumentError(`--recursive is for a folder; ${inputs[0]} is a file`)
  const request = requestFromFlags({ ...flags, imagePath: inputs[0], out } satisfies SubmitFlags)
  if (flags.format !== undefined && flags.format !== request.format) throw new InvalidArgumentError(`--format ${flags.format} and the output's extension (${request.output}) disagree; give one`)
  if (flags.skipExisting === true && await stat(request.output).then(() => true, () => false)) {
    process.stderr.write(`skipped: ${request.output} exists (--skip-existing)\n`)
    return
  }
  const interrupted = new Interruption({ json: flags.json === true, local: flags.peer === undefined })
  reporting.onInterrupt = () => { interrupted.say() }
  if (flags.peer !== undefined) {
    const show = progressReporter(flags.json === true ? 'json' : process.stderr.isTTY ? 'tty' : 'plain')
    const done = await submitToSwarm(request, { ...await swarmOptions(flags, flags.peer), onEvent: e => { interrupted.heard(e); show(e) } })
    if (flags.json !== true) {
      const peers = Object.entries(done.tilesByPeer).map(([id, n]) => `${shortId(id)}: ${n}`).join(', ')
      process.stdout.write(`wrote ${done.output} (${done.width}x${done.height}, ${done.bytes} bytes) in ${(done.ms / 1000).toFixed(2)} s; tiles by peer: ${peers}\n`)
      // Nothing checked (one tile, one peer, --verify off): no figures to give.
      if (done.verify !== undefined && (done.verify.checked > 0 || done.verify.disagreements > 0)) process.stdout.write(`${verifyResultText(done.verify, Object.values(done.tilesByPeer).reduce((a, b) => a + b, 0))}\n`)
    }
    return
  }
  const emit = (event: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(event) + '\n') }
  const result = await runLocal(request, {
    maxPixels: flags.maxPixels,
    maxUploadBytes: flags.maxUploadBytes,
    threads: flags.threads,
    log: line => flags.json === true ? emit({ event: 'log', message: line }) : process.stderr.write(line + '\n'),
  })
  if (flags.json === true) emit({ event: 'done', output: request.output, ...result })
  else process.stdout.write(`wrote ${request.output} (${result.width}x${result.height}, ${result.bytes} bytes) in ${(result.ms / 1000).toFixed(2)} s\n`)
}
