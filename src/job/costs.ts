import { createRaw, describePipeline, runPipeline, samples, withSamples, type OutputFormat, type PixelFormat, type RawImage, type Step } from '../imaging/index.ts'

/**
 * Priors for decoding and encoding, per pixel at one thread, measured here
 * (sharp 0.35, photos of 6 to 100 MP); each peer's own jobs then move them.
 */
const DECODE_NS: Record<string, number> = { jpeg: 9, png: 25, webp: 30, tiff: 15, gif: 20, heif: 60, avif: 60 }
const ENCODE_NS: Record<OutputFormat, number> = { jpeg: 9, png: 60, webp: 80, tiff: 20, avif: 250 }
/** How fast a measurement moves a figure: about the last ten jobs count. */
const WEIGHT = 0.2
/** The calibration image: large enough that a pass's fixed cost is measured apart from its per-pixel cost. */
const SAMPLE = { width: 384, height: 256 }
/** Pipelines whose cost is remembered (each is measured once, on first use). */
const REMEMBERED = 256

/** A photo's worth of detail: smooth gradients and a little grain, the same every time. */
function sampleImage (format: PixelFormat, width: number, height: number): RawImage {
  const image = createRaw(width, height, format)
  const s = samples(image)
  const max = format.depth === 16 ? 65535 : 255
  let seed = 7
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < format.channels; c++, i++) {
        seed = (seed * 1103515245 + 12345) >>> 0
        const smooth = 0.5 + 0.25 * Math.sin((x + 40 * c) / 37) + 0.2 * Math.cos((y - 30 * c) / 23)
        s[i] = Math.max(0, Math.min(max, Math.round(max * (smooth + ((seed >>> 24) - 128) / 4096))))
      }
    }
  }
  return withSamples(image, s)
}

async function timed (work: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint()
  await work()
  return Number(process.hrtime.bigint() - started)
}

/**
 * What jobs cost on this peer, per pixel at one thread: a pipeline's compute
 * measured on a sample the first time it is seen (less a pass's fixed cost,
 * measured on a tiny image), decoding and encoding from priors moved by this
 * peer's own jobs. The coordinator weighs spreading a job from these.
 */
export class CostModel {
  private readonly computed = new Map<string, Promise<number>>()
  private readonly decodeNs = new Map<string, number>(Object.entries(DECODE_NS))
  private readonly encodeNs = new Map<string, number>(Object.entries(ENCODE_NS))

  /** The tiled steps' cost per pixel on images of `format`. */
  async compute (steps: readonly Step[], format: PixelFormat): Promise<number> {
    if (steps.length === 0) return 0
    const key = `${format.channels}/${format.depth}/${describePipeline(steps)}`
    let figure = this.computed.get(key)
    if (figure === undefined) {
      figure = measure(steps, format)
      this.computed.set(key, figure)
      if (this.computed.size > REMEMBERED) this.computed.delete(this.computed.keys().next().value!)
      // A pipeline that fails on the sample fails on the job too, where it is reported; here it costs nothing.
      figure.catch(() => { this.computed.delete(key) })
    }
    return await figure.catch(() => 0)
  }

  decode (container: string): number {
    return this.decodeNs.get(container) ?? Math.max(...DECODE_NS_VALUES)
  }

  encode (format: OutputFormat): number {
    return this.encodeNs.get(format)!
  }

  /** A decode of `pixels` took `ns` here. */
  decoded (container: string, pixels: number, ns: number): void {
    move(this.decodeNs, container, ns / pixels)
  }

  /** An encode of `pixels` took `ns` here. */
  encoded (format: OutputFormat, pixels: number, ns: number): void {
    move(this.encodeNs, format, ns / pixels)
  }
}

const DECODE_NS_VALUES = Object.values(DECODE_NS)

function move (figures: Map<string, number>, key: string, measured: number): void {
  if (!Number.isFinite(measured) || measured <= 0) return
  const before = figures.get(key)
  figures.set(key, before === undefined ? measured : before + WEIGHT * (measured - before))
}

/** Per-pixel cost of `steps`: a sample's time less a tiny image's (a pass's fixed cost), the best of two tries each. */
async function measure (steps: readonly Step[], format: PixelFormat): Promise<number> {
  const tiny = sampleImage(format, 8, 8)
  const sample = sampleImage(format, SAMPLE.width, SAMPLE.height)
  let fixed = Infinity
  let whole = Infinity
  for (let i = 0; i < 2; i++) {
    fixed = Math.min(fixed, await timed(async () => await runPipeline(tiny, steps)))
    whole = Math.min(whole, await timed(async () => await runPipeline(sample, steps)))
  }
  return Math.max(0, whole - fixed) / (SAMPLE.width * SAMPLE.height)
}
