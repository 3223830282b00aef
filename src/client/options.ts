import { InvalidParameterError, OutputError } from '../common/errors.ts'
import { DEFAULT_QUALITY } from '../common/defaults.ts'
import { expected, formatFromPath, parseOps, resolvePipeline, type OpSpec, type OutputFormat, type Step } from '../imaging/index.ts'
import { MAX_QUALITY, MIN_QUALITY, OUTPUT_FORMATS, PRIORITIES, type Priority } from '../protocol/constants.ts'

/** What a submission asks for, from whichever flags the user prefers. */
export interface JobRequest {
  steps: Step[]
  input: string
  output: string
  format: OutputFormat
  quality: number
  /** Drop the input's EXIF, ICC profile and XMP (kept by default). */
  strip?: boolean
}

export interface SubmitFlags {
  task?: string[]
  op?: string[]
  ops?: string
  imagePath?: string
  out?: string
  quality?: string
  strip?: boolean
}

/**
 * `--task` (the prototype's flag) or `--op`, repeated, or `--ops` with a whole
 * pipeline: one of them. Across two of them the order of the steps on the
 * command line is lost, and order matters (rotate, then flip), so mixing is
 * refused rather than guessed at.
 */
export function pipelineFromFlags (flags: SubmitFlags): Step[] {
  const given = (['task', 'op', 'ops'] as const).filter(k => flags[k] !== undefined && flags[k].length > 0)
  if (given.length > 1) throw new InvalidParameterError(`Give the pipeline one way, not with ${given.map(k => `--${k}`).join(' and ')}: --ops "a,b:k=v", or --task (or --op) repeated, in order`)
  const specs: OpSpec[] = []
  for (const text of [...(flags.task ?? []), ...(flags.op ?? [])]) specs.push(...parseOps(text))
  if (flags.ops !== undefined) specs.push(...parseOps(flags.ops))
  if (specs.length === 0) throw new InvalidParameterError('Expected an operation: --task <name>, --op <name> or --ops "a,b:k=v" (see --list-ops)')
  return resolvePipeline(specs)
}

/** `--quality`: the default if not given. */
export function parseQuality (text: string | undefined): number {
  return text === undefined ? DEFAULT_QUALITY : checkQuality(text, '--quality')
}

/** An encoder quality, given as text (a flag) or a number (the web page's form), under the name `param`. */
export function checkQuality (value: string | number, param: string): number {
  const q = Number(value)
  if (!Number.isInteger(q) || q < MIN_QUALITY || q > MAX_QUALITY) throw expected(`an integer between ${MIN_QUALITY} and ${MAX_QUALITY}`, param, value)
  return q
}

/** A job's priority as a flag, a form field or a library option gives it. */
export function checkPriority (value: unknown, param: string): Priority {
  if (typeof value === 'string' && (PRIORITIES as readonly string[]).includes(value)) return value as Priority
  throw new InvalidParameterError(`Expected ${PRIORITIES.join(', ')} for ${param} but received '${String(value)}'`)
}

export function requestFromFlags (flags: SubmitFlags): JobRequest {
  const steps = pipelineFromFlags(flags)
  if (flags.imagePath === undefined) throw new InvalidParameterError('Expected an input image: --image_path <file> (or -i)')
  if (flags.out === undefined) throw new InvalidParameterError('Expected an output file: --out <file> (or -o); its extension picks the format')
  const format = formatFromPath(flags.out)
  if (format === undefined) throw new OutputError(`cannot tell the output format from '${flags.out}': use one of .jpg, .png, .webp, .tif, .avif (${OUTPUT_FORMATS.join(', ')})`)
  return { steps, input: flags.imagePath, output: flags.out, format, quality: parseQuality(flags.quality), ...(flags.strip === true ? { strip: true } : {}) }
}
