/**
 * The `shared` scenario's jobs: the mix (who submits what, when), each job's
 * input and local reference, and one job sent to the swarm under its
 * submitter's identity, its output checked against the reference.
 */
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeImage, runPipeline, type Step } from '../src/imaging/index.ts'
import type { VerifyLevel } from '../src/protocol/verify-level.ts'
import { submitBatch } from '../src/client/batch.ts'
import { planBatch } from '../src/client/batch-plan.ts'
import { submitToSwarm } from '../src/client/submit.ts'
import { noiseImage } from './model.ts'
import { InvalidParameterError } from '../src/common/errors.ts'
import type { Priority } from '../src/protocol/constants.ts'
import { checkPriority } from '../src/client/options.ts'

/** A tiled image of about `tiles` tiles, or a batch of `images` small whole images. */
export type JobSize = { kind: 'tiled', tiles: number } | { kind: 'batch', images: number }

/** One job of the mix. `submitter` names a client identity (one key each); `priority` goes with its submit. */
export interface SharedJobSpec {
  name: string
  submitter: string
  priority?: Priority
  /** When it is submitted in the shared run: this fraction of the first job's time alone. */
  arriveAt: number
  size: JobSize
}

/**
 * The default mix: ana's one big tiled job from the start; ben's four small
 * tiled jobs, one after another while it runs; cleo's batch a quarter in.
 */
export function defaultMix (options: { tiles: number, images: number }): SharedJobSpec[] {
  const small = Math.max(16, Math.round(options.tiles / 20))
  const mix: SharedJobSpec[] = [{ name: 'big', submitter: 'ana', arriveAt: 0, size: { kind: 'tiled', tiles: options.tiles } }]
  for (let i = 0; i < 4; i++) mix.push({ name: `small-${i + 1}`, submitter: 'ben', arriveAt: 0.15 + 0.15 * i, size: { kind: 'tiled', tiles: small } })
  if (options.images > 0) mix.push({ name: 'batch', submitter: 'cleo', arriveAt: 0.25, size: { kind: 'batch', images: options.images } })
  return mix
}

/**
 * `--priorities batch=high,small-1=low`: the mix with these jobs' priorities
 * set (the others normal).
 */
export function withPriorities (mix: SharedJobSpec[], text: string): SharedJobSpec[] {
  const given = new Map<string, Priority>()
  for (const item of text.split(',').map(s => s.trim()).filter(s => s !== '')) {
    const [name, level, ...rest] = item.split('=')
    if (name === undefined || level === undefined || rest.length > 0) throw new InvalidParameterError(`Expected job=priority in --priorities but received '${item}'`)
    if (!mix.some(j => j.name === name)) throw new InvalidParameterError(`--priorities names '${name}', not a job of the mix (${mix.map(j => j.name).join(', ')})`)
    given.set(name, checkPriority(level, `--priorities ${name}`))
  }
  return mix.map(j => given.has(j.name) ? { ...j, priority: given.get(j.name)! } : j)
}

/** A submitter's identity, the same for every run with this seed. */
export async function submitterKey (name: string, seed: number): Promise<PrivateKey> {
  const bytes = new Uint8Array(32)
  const text = `${seed}/${name}`
  for (let i = 0; i < text.length; i++) bytes[i % 32] = (bytes[i % 32]! * 31 + text.charCodeAt(i)) & 0xff
  return await generateKeyPairFromSeed('Ed25519', bytes)
}

/** A job's files: its input (an image, or a folder of them) and what each output must be. */
export interface JobInput {
  spec: SharedJobSpec
  path: string
  references: Map<string, Buffer>
}

/** Writes a job's input under `dir`, from noise seeded by `seed` (a different seed per run, so no result is cached from another). */
export async function prepareInput (spec: SharedJobSpec, dir: string, options: { seed: number, tileSize: number, steps: Step[] }): Promise<JobInput> {
  await mkdir(dir, { recursive: true })
  const references = new Map<string, Buffer>()
  if (spec.size.kind === 'tiled') {
    const cols = Math.ceil(Math.sqrt(spec.size.tiles))
    const rows = Math.ceil(spec.size.tiles / cols)
    const image = noiseImage(cols * options.tileSize - Math.floor(options.tileSize / 3), rows * options.tileSize - Math.floor(options.tileSize / 5), { channels: 3, depth: 8 }, options.seed)
    const path = join(dir, 'input.png')
    await writeFile(path, await encodeImage(image, { format: 'png' }))
    references.set('out.png', await encodeImage(await runPipeline({ ...image, data: Buffer.from(image.data) }, options.steps), { format: 'png' }))
    return { spec, path, references }
  }
  const path = join(dir, 'photos')
  await mkdir(path)
  for (let i = 0; i < spec.size.images; i++) {
    const one = noiseImage(48 + (i * 37) % 113, 40 + (i * 53) % 97, { channels: 3, depth: 8 }, options.seed * 7919 + i + 1)
    const name = `img-${String(i).padStart(5, '0')}.png`
    await writeFile(join(path, name), await encodeImage(one, { format: 'png' }))
    references.set(name, await encodeImage(await runPipeline(one, options.steps), { format: 'png' }))
  }
  return { spec, path, references }
}

export interface JobRun {
  ms: number
  /** The coordinator's job id (the compute meter's key). */
  jobId?: string
  /** What is wrong with its output: empty when every output equals its reference, written once. */
  failures: string[]
}

export interface RunContext {
  /** The peer this submitter sends to. */
  peer: string
  key: PrivateKey
  steps: Step[]
  tileSize: number
  verify: VerifyLevel
  idleTimeoutMs: number
  /** Where its output goes (a fresh folder per run). */
  out: string
}

/** The submitter's part of the client's options: its identity, and the job's priority if it has one. */
function submitOptions (spec: SharedJobSpec, ctx: RunContext): { peer: string, privateKey: PrivateKey, idleTimeoutMs: number, priority?: Priority } {
  return { peer: ctx.peer, privateKey: ctx.key, idleTimeoutMs: ctx.idleTimeoutMs, ...(spec.priority !== undefined ? { priority: spec.priority } : {}) }
}

/** Sends one job as its submitter would, times it from the call to the last output, and checks every output. */
export async function runJob (input: JobInput, ctx: RunContext): Promise<JobRun> {
  const started = performance.now()
  const failures: string[] = []
  let jobId: string | undefined
  await mkdir(ctx.out, { recursive: true })
  try {
    if (input.spec.size.kind === 'tiled') {
      const output = join(ctx.out, 'out.png')
      await submitToSwarm({ steps: ctx.steps, input: input.path, output, format: 'png', quality: 90 }, {
        ...submitOptions(input.spec, ctx),
        tileSize: ctx.tileSize,
        verify: ctx.verify,
        onEvent: e => { if (e.event === 'accepted') jobId = e.jobId },
      })
    } else {
      const written = new Map<string, number>()
      const batch = await submitBatch({ plan: await planBatch([input.path], ctx.out, { recursive: false }), steps: ctx.steps, quality: 90, skipExisting: false }, {
        ...submitOptions(input.spec, ctx),
        onBatchEvent: e => {
          if (e.event === 'started') jobId = e.jobId
          if (e.event === 'image') written.set(e.input, (written.get(e.input) ?? 0) + 1)
        },
      })
      if (batch.failures.length > 0) failures.push(`${batch.failures.length} images failed: ${batch.failures[0]!.message}`)
      const twice = [...written.values()].filter(n => n !== 1).length
      if (written.size !== input.references.size || twice > 0) failures.push(`${written.size} of ${input.references.size} images written, ${twice} more than once`)
    }
  } catch (err) {
    failures.push(`failed: ${(err as Error).message}`)
  }
  const ms = performance.now() - started
  for (const [name, want] of input.references) {
    const got = await readFile(join(ctx.out, name)).catch(() => undefined)
    if (got === undefined || !got.equals(want)) failures.push(`${name} ${got === undefined ? 'missing' : 'differs from the local reference'}`)
  }
  return { ms, ...(jobId !== undefined ? { jobId } : {}), failures: failures.map(f => `${input.spec.name}: ${f}`) }
}
