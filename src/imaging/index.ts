/**
 * The imaging core: raw pixels, the operation registry, pipelines, tiles with
 * halos, and the codecs. Tiled output equals whole-image output byte for byte.
 */
export * from './raw.ts'
export * from './params.ts'
export type { Operation, Family, AlphaPolicy, GlobalStep, GeometryStep, Reducer, StepContext, StepPlace, GridInfo } from './operation.ts'
export { TileMemo } from './operation.ts'
export { OPERATIONS, getOperation, describeOperations } from './registry.ts'
export * from './pipeline.ts'
export * from './tiles.ts'
export * from './tile-runner.ts'
export * from './codec.ts'
export { semaphore, withPassGate, type Gate } from './gate.ts'
export * from './phases.ts'
export * from './whole-file.ts'
