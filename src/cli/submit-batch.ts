import { BATCH_INCOMPLETE_EXIT, runLocalBatch, submitBatch } from '../client/batch.ts'
import type { BatchEvent } from '../client/batch-events.ts'
import { planBatch } from '../client/batch-plan.ts'
import { parseQuality, pipelineFromFlags } from '../client/options.ts'
import { batchReporter } from '../client/batch-progress.ts'
import { InvalidParameterError } from '../common/errors.ts'
import { formatFromPath } from '../imaging/index.ts'
import type { Reporting } from './report.ts'
import { swarmOptions, type SubmitCliFlags } from './submit-flags.ts'

/** A batch: many images, one job; a summary at the end, and exit status 3 if any image failed. */
export async function submitBatchCommand (flags: SubmitCliFlags, inputs: string[], out: string | undefined, reporting: Reporting): Promise<void> {
  const steps = pipelineFromFlags({ ...flags, imagePath: undefined })
  if (out === undefined) throw new InvalidParameterError('Expected where a batch goes: --out <folder> (the input tree mirrored) or --out <file.zip>')
  if (formatFromPath(out) !== undefined) throw new InvalidParameterError(`a batch of images goes to a folder or a .zip, not to ${out}`)
  if (flags.skipExisting === true && out.toLowerCase().endsWith('.zip')) throw new InvalidParameterError('--skip-existing needs a folder output: a .zip is written whole at the end')
  const plan = await planBatch(inputs, out, { recursive: flags.recursive === true, ...(flags.format !== undefined ? { format: flags.format } : {}) })
  const request = { plan, steps, quality: parseQuality(flags.quality), ...(flags.strip === true ? { strip: true } : {}), skipExisting: flags.skipExisting === true }
  const report = batchReporter(flags.json === true ? 'json' : process.stderr.isTTY ? 'tty' : 'plain')
  let written = 0
  let total = plan.items.length
  const onBatchEvent = (event: BatchEvent): void => {
    if (event.event === 'image') written++
    if (event.event === 'batch') total = event.images
    report(event)
  }
  // Said on Ctrl-C: how far it got, and how to go on.
  reporting.onInterrupt = () => {
    const message = plan.target.kind === 'zip'
      ? `interrupted: ${out} is not written (a .zip is written whole at the end; a folder keeps what is done)`
      : `interrupted: ${written} of ${total} images written to ${out}; run the same command with --skip-existing to do the rest`
    if (flags.json === true) process.stdout.write(JSON.stringify({ event: 'interrupted', written, total, message }) + '\n')
    else process.stderr.write(`\n${message}\n`)
  }
  const summary = flags.peer !== undefined
    ? await submitBatch(request, { ...await swarmOptions(flags, flags.peer), tileAboveMp: flags.tileAboveMp, onBatchEvent })
    : await runLocalBatch(request, { maxPixels: flags.maxPixels, maxUploadBytes: flags.maxUploadBytes, threads: flags.threads, onBatchEvent })
  if (flags.json !== true) {
    const seconds = summary.ms / 1000
    const rate = seconds > 0 ? ` (${(summary.done / seconds).toFixed(2)} images/s, ${(summary.megapixels / seconds).toFixed(1)} MP/s)` : ''
    process.stdout.write(`batch: ${summary.done} done, ${summary.skipped} skipped, ${summary.failures.length} failed in ${seconds.toFixed(2)} s${rate}; outputs in ${out}\n`)
    for (const f of summary.failures) process.stdout.write(`failed: ${f.input}: ${f.message}\n`)
  }
  if (summary.failures.length > 0) process.exitCode = BATCH_INCOMPLETE_EXIT
}
