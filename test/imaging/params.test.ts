import test from 'ava'
import { getOperation, parseOps, resolvePipeline, describeOperations, OPERATIONS, pipelineRadius, pipelineFormat } from '../../src/imaging/index.ts'

test('parseOps reads names, key=value, bare first parameter and kernels with commas', t => {
  t.deepEqual(parseOps('blur:sigma=2,sobel'), [{ op: 'blur', params: { sigma: '2' } }, { op: 'sobel', params: {} }])
  t.deepEqual(parseOps('blur:3'), [{ op: 'blur', params: { sigma: '3' } }])
  t.deepEqual(parseOps('convolve:kernel=[0,-1,0,-1,5,-1,0,-1,0]:scale=1, invert'), [
    { op: 'convolve', params: { kernel: '[0,-1,0,-1,5,-1,0,-1,0]', scale: '1' } },
    { op: 'invert', params: {} },
  ])
  const [step] = resolvePipeline(parseOps('convolve:kernel=[0,-1,0,-1,5,-1,0,-1,0]'))
  t.deepEqual(step!.params.kernel, [0, -1, 0, -1, 5, -1, 0, -1, 0])
  t.deepEqual(parseOps('crop:10:20:640:480'), [{ op: 'crop', params: { left: '10', top: '20', width: '640', height: '480' } }], 'bare values fill the parameters in order')
  t.deepEqual(resolvePipeline(parseOps('threshold:auto'))[0]!.params, { level: 'auto' })
  t.deepEqual(resolvePipeline(parseOps('rotate:270'))[0]!.params, { angle: '270' })
})

test('aliases resolve to their operation; edge_detection is canny 100/200, as the prototype', t => {
  t.is(getOperation('edge_detection').name, 'canny')
  const [step] = resolvePipeline(parseOps('edge_detection'))
  t.like(step!.params, { low: 100, high: 200, sigma: 0, gradient: 'l1' })
  t.is(getOperation('equalise').name, 'equalize')
  t.is(getOperation('normalize').name, 'normalise')
  t.is(getOperation('grayscale').name, 'greyscale')
  t.is(getOperation('GreyScale').name, 'greyscale')
})

test('an unknown operation names the known ones, and the near ones first', t => {
  const err = t.throws(() => parseOps('hough'))
  t.is(err?.name, 'UnknownOperationError')
  t.regex(err!.message, /^Unknown operation 'hough'; known operations: .*blur.*canny.*sobel.*greyscale.*equalize.*resize.*rotate.*flip.*crop/)
  t.regex(t.throws(() => parseOps('cany'))!.message, /did you mean 'canny'\?/)
  t.regex(t.throws(() => parseOps('resise:width=10'))!.message, /did you mean 'resize'\?/)
  t.regex(t.throws(() => parseOps('equalizer'))!.message, /did you mean 'equalize'/)
  t.regex(t.throws(() => parseOps('medain'))!.message, /^Unknown operation 'medain' \(did you mean 'median'\?\); known operations:/)
  t.regex(t.throws(() => parseOps('Gaussian_Blr:sigma=2'))!.message, /^Unknown operation 'Gaussian_Blr' \(did you mean 'gaussian_blur'\?\)/)
  t.regex(t.throws(() => parseOps('blur,sobell'))!.message, /^Unknown operation 'sobell' \(did you mean 'sobel'\?\)/)
  t.regex(t.throws(() => parseOps('greyscal'))!.message, /^Unknown operation 'greyscal' \(did you mean 'greyscale' or 'grayscale'\?\)/, 'nearest first, aliases too')
})

test('parameter errors name the parameter, its range and the value', t => {
  const cases: Array<[string, RegExp]> = [
    ['blur:sigma=0', /^sigma of blur must be a number between 0.3 and 100, got 0$/],
    ['blur:sigma=abc', /^sigma of blur must be a number between 0.3 and 100, got "abc"$/],
    ['median:size=4', /^size of median must be an odd integer between 3 and 15, got 4$/],
    ['median:size=17', /odd integer between 3 and 15/],
    ['convolve:kernel=[1,2,3,4]', /^kernel of convolve must be a square kernel .*, got "\[1,2,3,4\]"$/],
    ['convolve:kernel=[1]', /square kernel/],
    ['tint:colour=red', /^colour of tint must be a colour as #rrggbb, got "red"$/],
    ['blur:radius=3', /Unknown parameter 'radius' for blur: its parameters are sigma/],
    ['resize:wdth=800', /Unknown parameter 'wdth' \(did you mean 'width'\?\) for resize: its parameters are width, height, scale, kernel/],
    ['invert:3', /invert takes no parameters/],
    ['canny:low=200:high=100', /^low of canny must be at most its high, got low=200, high=100/],
    ['canny:250', /low of canny must be at most its high, got low=250, high=200 \(high is 200 unless given\)/],
    ['canny:sigma=0.1', /^sigma of canny must be 0 \(no blur\) or a number between 0.3 and 10, got 0.1$/],
    ['canny:gradient=l3', /^gradient of canny must be one of l1, l2, got "l3"$/],
    ['resize', /^resize needs a width, a height or a scale/],
    ['resize:width=10:scale=2', /^resize takes a scale or a width and height, not both$/],
    ['rotate:45', /^angle of rotate must be one of 90, 180, 270, got 45$/],
    ['normalise:lower=60:upper=40', /^lower of normalise must be below its upper/],
    ['threshold:level=autox', /^level of threshold must be a number between 0 and 255 or auto, got "autox"$/],
    ['blur:2:3', /^blur takes one parameter \(sigma\), got 'blur:2:3'$/],
    ['resize:width=2048,height=2048', /^'height=2048' is not an operation: parameters follow ':' \(resize:width=2048:height=2048\), and ',' starts the next step$/],
  ]
  for (const [text, pattern] of cases) {
    const err = t.throws(() => resolvePipeline(parseOps(text)), undefined, text)
    t.is(err?.name, 'InvalidParameterError', text)
    t.regex(err!.message, pattern, text)
  }
  t.throws(() => resolvePipeline([]), { message: /at least one operation/ })
  t.throws(() => resolvePipeline(new Array(17).fill({ op: 'invert' })), { message: /at most 16/ })
  t.throws(() => resolvePipeline([{ op: 'blur', params: { sigma: Number.NaN } }]), { name: 'InvalidParameterError' })
  t.throws(() => resolvePipeline([{ op: 'blur', params: { sigma: 1e300 } }]), { name: 'InvalidParameterError' })
})

test('halos add up along a pipeline, from the libvips mask rule', t => {
  const radius = (text: string): number => pipelineRadius(resolvePipeline(parseOps(text)))
  t.is(radius('blur:1'), 1)
  t.is(radius('blur:2'), 3)
  t.is(radius('blur:3'), 5)
  t.is(radius('blur:10'), 17)
  t.is(radius('sharpen:3'), 6)
  t.is(radius('median:5'), 2)
  t.is(radius('invert,greyscale'), 0)
  t.is(radius('blur:3,sobel,median:5'), 8)
})

test('pipeline output formats: edges give grey, alpha survives colour ops but not edge maps', t => {
  const fmt = (text: string, channels: 1 | 2 | 3 | 4) => pipelineFormat({ channels, depth: 8 }, resolvePipeline(parseOps(text))).channels
  t.is(fmt('sobel', 3), 1)
  t.is(fmt('sobel', 4), 1)
  t.is(fmt('greyscale', 4), 2)
  t.is(fmt('sepia', 1), 3)
  t.is(fmt('blur', 2), 2)
})

test('--list-ops text names every operation, its parameters and the Canny note', t => {
  const text = describeOperations()
  for (const op of OPERATIONS) {
    t.true(text.includes(`  ${op.name}`), op.name)
    for (const p of op.params) t.true(text.includes(`${p.name}=`), `${op.name}.${p.name}`)
  }
  t.regex(text, /edge_detection is canny with the prototype's thresholds \(100\/200\)/)
  t.regex(text, /resize[^\n]*\n\s+\[runs on the whole image, once, on the job's coordinator/)
  t.regex(text, /canny[^\n]*\n\s+\[takes a phase of its own/)
})
