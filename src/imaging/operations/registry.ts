import { UnknownOperationError } from '../../common/errors.ts'
import type { Operation } from './operation.ts'
import { colourOperations } from './colour.ts'
import { edgeOperations } from './edge.ts'
import { filterOperations } from './filter.ts'
import { canny } from './canny.ts'
import { levelOperations } from './levels.ts'
import { geometryOperations } from './geometry.ts'
import { paramUsage } from './params.ts'
import { didYouMean } from '../../common/suggest.ts'

/** Every operation, grouped by family in the order --list-ops prints them. */
export const OPERATIONS: readonly Operation[] = [...filterOperations, canny, ...edgeOperations, ...colourOperations, ...levelOperations, ...geometryOperations]

const byName = new Map<string, Operation>()
for (const op of OPERATIONS) {
  for (const name of [op.name, ...(op.aliases ?? [])]) {
    if (byName.has(name)) throw new Error(`internal: operation name ${name} registered twice`)
    byName.set(name, op)
  }
}

export function getOperation (name: string): Operation {
  const key = name.trim().toLowerCase()
  const op = byName.get(key)
  if (op === undefined) {
    throw new UnknownOperationError(`Unknown operation '${name}'${didYouMean(key, [...byName.keys()])}; known operations: ${OPERATIONS.map(o => o.name).join(', ')} (--list-ops lists them with their aliases)`)
  }
  return op
}

const FAMILY_TITLES: Record<Operation['family'], string> = { filter: 'filtering', edge: 'edge detection', colour: 'colour', geometry: 'geometry' }

/** How a step runs, where that is not simply tile by tile. */
function howItRuns (op: Operation): string | undefined {
  if (op.geometry !== undefined) return 'runs on the whole image, once, on the job\'s coordinator, with any step before it; the steps after it are tiled'
  // Before a geometry step, any step runs in the whole-image prelude instead.
  if (op.global !== undefined) return op.name === 'threshold' ? 'level=auto takes a phase of its own: tiles report histograms, then apply the level (unless a geometry step comes later)' : 'takes a phase of its own: tiles report what the whole image decides, then apply it (unless a geometry step comes later)'
  return undefined
}

/** The text --list-ops prints. */
export function describeOperations (): string {
  const lines: string[] = []
  for (const family of ['filter', 'edge', 'colour', 'geometry'] as const) {
    lines.push(`${FAMILY_TITLES[family]}:`)
    for (const op of OPERATIONS.filter(o => o.family === family)) {
      const aliases = op.aliases !== undefined ? ` (alias: ${op.aliases.join(', ')})` : ''
      lines.push(`  ${op.name}${aliases}: ${op.summary}`)
      const how = howItRuns(op)
      if (how !== undefined) lines.push(`      [${how}]`)
      for (const p of op.params) lines.push(`      ${paramUsage(p)}  ${p.description}`)
      lines.push(`      e.g. --ops "${op.example}"`)
    }
  }
  lines.push('', 'Pipelines: --ops "blur:sigma=2,sobel" or --task repeated; steps run in order.',
    'Parameters: name:key=value:key=value; bare values fill the parameters in order (blur:2, threshold:auto, crop:10:20:640:480).',
    'Every step gives the same bytes tiled across the swarm as on the whole image in one process.',
    'edge_detection is canny with the prototype\'s thresholds (100/200); sobel is the gradient magnitude.')
  return lines.join('\n')
}
