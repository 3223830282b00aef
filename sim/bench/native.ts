/**
 * sharp's own pipeline, what a user would write instead of a swarm: decode,
 * the operation and encode in one libvips pipeline, at --threads. Run as its
 * own process by the bench; prints JSON: the pipeline's wall and CPU, and
 * (with --parts) what decoding alone and encoding alone cost on this image.
 * Usage: node sim/bench/native.ts <op> <input> <output> <threads> [--parts]
 */
import sharp, { type OutputInfo, type Sharp } from 'sharp'
import { OPTIMISE_CODING_MAX_PIXELS } from '../../src/imaging/index.ts'

/** The bench's operations, as sharp's own calls. */
export const NATIVE: Record<string, (s: Sharp) => Sharp> = {
  'median:size=5': s => s.median(5),
  'blur:sigma=3': s => s.blur(3),
  // Our sharpen's defaults (libvips' unsharp mask, sigma 1); sharp's bare sharpen() is a cheaper 3x3 kernel.
  'greyscale,blur:sigma=1.5,sharpen': s => s.greyscale().blur(1.5).sharpen({ sigma: 1, m1: 1, m2: 2 }),
}

function encoder (s: Sharp, output: string, pixels: number): Sharp {
  return output.endsWith('.png') ? s.png({ compressionLevel: 6 }) : s.jpeg({ quality: 90, mozjpeg: false, optimiseCoding: pixels <= OPTIMISE_CODING_MAX_PIXELS })
}

async function cpuOf (work: () => Promise<unknown>): Promise<{ wallS: number, cpuS: number }> {
  const cpu = process.cpuUsage()
  const started = performance.now()
  await work()
  const used = process.cpuUsage(cpu)
  return { wallS: (performance.now() - started) / 1000, cpuS: (used.user + used.system) / 1e6 }
}

if (import.meta.main) {
  const [op, input, output, threads, parts] = process.argv.slice(2)
  const build = NATIVE[op!]
  if (build === undefined) throw new Error(`no sharp equivalent of ${op}`)
  sharp.concurrency(Number(threads))
  sharp.cache(false)
  const { width, height } = await sharp(input, { limitInputPixels: false }).metadata()
  const pixels = width! * height!
  const pipeline = await cpuOf(async () => await encoder(build(sharp(input, { limitInputPixels: false })), output!, pixels).toFile(output!))
  const result: Record<string, unknown> = { ...pipeline, pixels }
  if (parts === '--parts') {
    let raw: { data: Buffer, info: OutputInfo } | undefined
    result.decode = await cpuOf(async () => { raw = await sharp(input, { limitInputPixels: false }).raw().toBuffer({ resolveWithObject: true }) })
    const { data, info } = raw!
    result.encode = await cpuOf(async () => await encoder(sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } }), output!, pixels).toBuffer())
  }
  process.stdout.write(JSON.stringify(result) + '\n')
}
