/**
 * The imaging core: raw pixels, the operation registry, pipelines, tiles with
 * halos, and the codecs. Tiled output equals whole-image output byte for byte.
 * It imports one way: pixels/ (raw images, sharp passes) <- operations/ (the
 * operation model, the registry and every operation) <- the pipeline, phases,
 * tiles and codecs here.
 */
export * from './pixels/raw.ts'
export * from './operations/params.ts'
export type { Operation, Family, AlphaPolicy, GlobalStep, GeometryStep, Reducer, StepContext, StepPlace, GridInfo } from './operations/operation.ts'
export { TileMemo } from './operations/operation.ts'
export { OPERATIONS, getOperation, describeOperations } from './operations/registry.ts'
export * from './pipeline.ts'
export * from './tiles.ts'
export * from './tile-runner.ts'
export * from './codec.ts'
export { meteredSemaphore, meteringWaits, semaphore, withPassGate, type Gate, type Waits } from './pixels/gate.ts'
export * from './phases.ts'
export * from './whole-file.ts'
export { type ImageMetadata, hasMetadata } from './metadata.ts'
