import { UnknownOperationError } from '../errors.ts'
import type { Operation } from './operation.ts'
import { colourOperations } from './operations/colour.ts'
import { edgeOperations } from './operations/edge.ts'
import { filterOperations } from './operations/filter.ts'
import { paramUsage } from './params.ts'
import { didYouMean } from '../suggest.ts'

/** Every operation, grouped by family in the order --list-ops prints them. */
export const OPERATIONS: readonly Operation[] = [...filterOperations, ...edgeOperations, ...colourOperations]

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
    throw new UnknownOperationError(`Unknown operation '${name}'${didYouMean(key, [...byName.keys()])}; known operations: ${OPERATIONS.map(o => o.name).join(', ')} (aliases: ${OPERATIONS.flatMap(o => o.aliases ?? []).join(', ')})`)
  }
  return op
}

/** The text --list-ops prints. */
export function describeOperations (): string {
  const lines: string[] = []
  for (const family of ['filter', 'edge', 'colour'] as const) {
    lines.push(`${family === 'edge' ? 'edge detection' : family === 'filter' ? 'filtering' : 'colour'}:`)
    for (const op of OPERATIONS.filter(o => o.family === family)) {
      const aliases = op.aliases !== undefined ? ` (alias: ${op.aliases.join(', ')})` : ''
      lines.push(`  ${op.name}${aliases}: ${op.summary}`)
      for (const p of op.params) lines.push(`      ${paramUsage(p)}  ${p.description}`)
      lines.push(`      e.g. --ops "${op.example}"`)
    }
  }
  lines.push('', 'Pipelines: --ops "blur:sigma=2,sobel" or --task repeated; steps run in order.',
    'Parameters: name:key=value:key=value; a bare value sets the first parameter (blur:2).',
    'edge_detection is sobel: the prototype used Canny (90/180), whose hysteresis is not',
    'local and cannot be tiled with a fixed halo; it comes with two-phase jobs.')
  return lines.join('\n')
}
