import { sameChannels, type Operation } from './operation.ts'
import { maxSample } from '../pixels/raw.ts'
import { toGrey } from './luma.ts'
import { applyLut, greyToRgb, sharpPass } from '../pixels/sharp-pass.ts'

const pointRadius = (): number => 0
const toRgb = (): 1 | 3 => 3

const factor = (name: string, def: number, description: string) =>
  [{ name, kind: 'number' as const, min: 0, max: 10, default: def, description }]

/** Luminance (sharp's greyscale, colour-managed); alpha is kept. */
export const greyscale: Operation = {
  name: 'greyscale',
  aliases: ['grayscale'],
  family: 'colour',
  summary: 'luminance, grey out',
  example: 'greyscale',
  params: [],
  radius: pointRadius,
  colourOut: () => 1,
  alpha: 'keep',
  apply: async image => await toGrey(image),
}

export const invert: Operation = {
  name: 'invert',
  aliases: ['negate'],
  family: 'colour',
  summary: 'max - value on each colour channel (alpha kept)',
  example: 'invert',
  params: [],
  radius: pointRadius,
  colourOut: sameChannels,
  alpha: 'keep',
  apply: async image => {
    const max = maxSample(image.depth)
    return applyLut(image, v => max - v)
  },
}

export const brightness: Operation = {
  name: 'brightness',
  family: 'colour',
  summary: 'multiplies every colour sample by factor',
  example: 'brightness:factor=1.3',
  params: factor('factor', 1.2, '1 leaves the image as it is'),
  radius: pointRadius,
  colourOut: sameChannels,
  alpha: 'keep',
  apply: async (image, p) => applyLut(image, v => v * (p.factor as number)),
}

export const contrast: Operation = {
  name: 'contrast',
  family: 'colour',
  summary: 'stretches samples away from mid-grey by factor',
  example: 'contrast:factor=1.5',
  params: factor('factor', 1.2, '1 leaves the image as it is; below 1 flattens'),
  radius: pointRadius,
  colourOut: sameChannels,
  alpha: 'keep',
  apply: async (image, p) => {
    const mid = (maxSample(image.depth) + 1) / 2
    return applyLut(image, v => (v - mid) * (p.factor as number) + mid)
  },
}

export const gamma: Operation = {
  name: 'gamma',
  family: 'colour',
  summary: 'out = max * (in / max)^(1 / gamma): above 1 brightens mid-tones',
  example: 'gamma:gamma=2.2',
  params: [{ name: 'gamma', kind: 'number', min: 0.1, max: 10, default: 2.2, description: '1 leaves the image as it is' }],
  radius: pointRadius,
  colourOut: sameChannels,
  alpha: 'keep',
  apply: async (image, p) => {
    const max = maxSample(image.depth)
    return applyLut(image, v => max * Math.pow(v / max, 1 / (p.gamma as number)))
  },
}

export const saturation: Operation = {
  name: 'saturation',
  family: 'colour',
  summary: 'scales chroma in LCh by factor (0: grey)',
  example: 'saturation:factor=1.5',
  params: factor('factor', 1.5, '1 leaves the image as it is'),
  radius: pointRadius,
  colourOut: sameChannels,
  alpha: 'keep',
  apply: async (image, p) => image.channels === 1 ? image : await sharpPass(image, s => s.modulate({ saturation: p.factor as number })),
}

export const hue: Operation = {
  name: 'hue',
  family: 'colour',
  summary: 'rotates hue in LCh by degrees',
  example: 'hue:degrees=90',
  params: [{ name: 'degrees', kind: 'number', min: -360, max: 360, default: 90, integer: true, description: 'rotation angle' }],
  radius: pointRadius,
  colourOut: sameChannels,
  alpha: 'keep',
  apply: async (image, p) => image.channels === 1 ? image : await sharpPass(image, s => s.modulate({ hue: p.degrees as number })),
}

const SEPIA: [[number, number, number], [number, number, number], [number, number, number]] = [
  [0.393, 0.769, 0.189],
  [0.349, 0.686, 0.168],
  [0.272, 0.534, 0.131],
]

export const sepia: Operation = {
  name: 'sepia',
  family: 'colour',
  summary: 'the classic sepia colour matrix, RGB out',
  example: 'sepia',
  params: [],
  radius: pointRadius,
  colourOut: toRgb,
  alpha: 'keep',
  apply: async image => await sharpPass(greyToRgb(image), s => s.recomb(SEPIA), 3),
}

export const tint: Operation = {
  name: 'tint',
  family: 'colour',
  summary: 'keeps luminance, takes chroma from colour, RGB out',
  example: 'tint:colour=#704214',
  params: [{ name: 'colour', kind: 'colour', default: '#704214', description: 'the tint' }],
  radius: pointRadius,
  colourOut: toRgb,
  alpha: 'keep',
  apply: async (image, p) => await sharpPass(greyToRgb(image), s => s.tint(p.colour as string), 3),
}

/** Pixels unchanged, written in the output's format: a format conversion (and what the swarm costs when the work costs nothing). */
export const convert: Operation = {
  name: 'convert',
  family: 'colour',
  summary: 'pixels unchanged: converts the image to the output file\'s format',
  example: 'convert',
  params: [],
  radius: pointRadius,
  colourOut: sameChannels,
  alpha: 'keep',
  apply: async image => image,
}

export const colourOperations = [greyscale, invert, brightness, contrast, gamma, saturation, hue, sepia, tint, convert]
