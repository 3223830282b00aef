import type { GridInfo, Reducer } from './operation.ts'
import type { Params } from './params.ts'
import { bytesOf, growRect, u32Words, type Rect } from '../pixels/raw.ts'
import { NONE } from './canny-gradient.ts'

/**
 * Canny's hysteresis across tiles: a weak pixel is an edge when it is
 * 8-connected to a strong one, however far away. Each tile labels the
 * connected components of its core and reports the labels on a band along
 * its sides; the reducer unions them across the sides and tells each tile
 * which pixels around its core are on an edge.
 */

/** 8-connected components of the weak and strong pixels: each pixel's root (-1: not a candidate). */
export function components (cls: Uint8Array, width: number, height: number): Int32Array {
  const parent = new Int32Array(cls.length).fill(-1)
  const find = (i: number): number => {
    while (parent[i] !== i) { parent[i] = parent[parent[i]!]!; i = parent[i]! }
    return i
  }
  const union = (a: number, b: number): void => {
    const ra = find(a)
    const rb = find(b)
    // The smaller index is the root: labels do not depend on the order of unions.
    if (ra < rb) parent[rb] = ra
    else if (rb < ra) parent[ra] = rb
  }
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x
      if (cls[i] === NONE) continue
      parent[i] = i
      if (x > 0 && cls[i - 1] !== NONE) union(i, i - 1)
      if (y > 0) {
        const up = i - width
        if (x > 0 && cls[up - 1] !== NONE) union(i, up - 1)
        if (cls[up] !== NONE) union(i, up)
        if (x < width - 1 && cls[up + 1] !== NONE) union(i, up + 1)
      }
    }
  }
  for (let i = 0; i < parent.length; i++) if (parent[i]! >= 0) parent[i] = find(i)
  return parent
}

/**
 * How deep along its sides a tile reports its labels: a pixel `reach` outside
 * a core lies at most reach - 1 deep in its own; and at least the side
 * itself, where tiles meet.
 */
export function bandDepth (reach: number): number {
  return Math.max(reach, 1)
}

export function bandSize (width: number, height: number, band: number): number {
  const inner = Math.max(0, width - 2 * band) * Math.max(0, height - 2 * band)
  return width * height - inner
}

/**
 * Where (x, y) of a width x height core comes in the band's row-by-row order
 * (what summaries list), or -1 if it is deeper than the band.
 */
export function bandIndex (x: number, y: number, width: number, height: number, band: number): number {
  if (width <= 2 * band) return y * width + x
  const middle = Math.max(0, height - 2 * band)
  if (y < band) return y * width + x
  if (y < band + middle) {
    if (x >= band && x < width - band) return -1
    return band * width + (y - band) * 2 * band + (x < band ? x : x - width + 2 * band)
  }
  return band * width + middle * 2 * band + (y - band - middle) * width + x
}

/**
 * The tiles' band labels as one union-find: a node per (tile, label) that
 * shows in a band. Cores are a regular grid, so a pixel's tile and its place
 * in that tile's band are arithmetic.
 */
class BandGraph {
  private readonly grid: GridInfo
  private readonly labels: readonly Uint32Array[]
  private readonly band: number
  private readonly tileW: number
  private readonly tileH: number
  private readonly columns: number
  /** labels[t]'s label -> its node. */
  private readonly nodeOf: Array<Map<number, number>> = []
  private readonly parent: Int32Array

  constructor (grid: GridInfo, labels: readonly Uint32Array[]) {
    this.grid = grid
    this.labels = labels
    this.band = bandDepth(grid.reach)
    this.tileW = grid.cores[0]!.width
    this.tileH = grid.cores[0]!.height
    this.columns = Math.ceil(grid.width / this.tileW)
    let nodes = 0
    for (let t = 0; t < grid.cores.length; t++) {
      const map = new Map<number, number>()
      for (const label of labels[t]!) if (label !== 0 && !map.has(label)) map.set(label, nodes++)
      this.nodeOf.push(map)
    }
    this.parent = new Int32Array(nodes)
    for (let n = 0; n < nodes; n++) this.parent[n] = n
  }

  get nodes (): number {
    return this.parent.length
  }

  find (i: number): number {
    const parent = this.parent
    while (parent[i] !== i) { parent[i] = parent[parent[i]!]!; i = parent[i]! }
    return i
  }

  /** Tile t's node of `label`, if that label shows in its band. */
  nodeOfLabel (t: number, label: number): number | undefined {
    return this.nodeOf[t]!.get(label)
  }

  /** The node of image pixel (x, y), or -1: not a candidate, or deeper than its tile's band. */
  nodeAt (x: number, y: number): number {
    const t = Math.floor(y / this.tileH) * this.columns + Math.floor(x / this.tileW)
    const core = this.grid.cores[t]!
    const k = bandIndex(x - core.x, y - core.y, core.width, core.height, this.band)
    if (k < 0) return -1
    const label = this.labels[t]![k]!
    return label === 0 ? -1 : this.nodeOf[t]!.get(label)!
  }

  /** Along the core's sides, each candidate joins its candidate neighbours across them. */
  joinAcross (core: Rect): void {
    for (let y = core.y; y < core.y + core.height; y++) {
      const side = y === core.y || y === core.y + core.height - 1
      for (let x = core.x; x < core.x + core.width; x += side || x === core.x + core.width - 1 ? 1 : core.width - 1) {
        const a = this.nodeAt(x, y)
        if (a >= 0) this.joinNeighbours(a, x, y, core)
      }
    }
  }

  private joinNeighbours (a: number, x: number, y: number, core: Rect): void {
    const { width, height } = this.grid
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx
        const ny = y + dy
        if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue
        if (nx >= core.x && nx < core.x + core.width && ny >= core.y && ny < core.y + core.height) continue
        const b = this.nodeAt(nx, ny)
        if (b < 0) continue
        const ra = this.find(a)
        const rb = this.find(b)
        if (ra !== rb) this.parent[Math.max(ra, rb)] = Math.min(ra, rb)
      }
    }
  }
}

/** The roots of the components that hold a strong pixel in some tile: 1 at each. */
function edgeRoots (graph: BandGraph, strongOf: readonly Uint32Array[], tiles: number): Uint8Array {
  const edgeRoot = new Uint8Array(graph.nodes)
  for (let t = 0; t < tiles; t++) {
    for (const label of strongOf[t]!) {
      const node = graph.nodeOfLabel(t, label)
      if (node !== undefined) edgeRoot[graph.find(node)] = 1
    }
  }
  return edgeRoot
}

/** A tile's context: the edge pixels on its core's sides and in the reach around it, as (x, y) u32 pairs. */
function edgesAround (graph: BandGraph, edgeRoot: Uint8Array, core: Rect, grid: GridInfo): Uint8Array {
  const on: number[] = []
  const r = growRect(core, grid.reach, grid.width, grid.height)
  for (let y = r.y; y < r.y + r.height; y++) {
    const inner = y > core.y && y < core.y + core.height - 1
    for (let x = r.x; x < r.x + r.width; x++) {
      // Deep inside its own core a tile's labels say it all.
      if (inner && x > core.x && x < core.x + core.width - 1) { x = core.x + core.width - 2; continue }
      const node = graph.nodeAt(x, y)
      if (node >= 0 && edgeRoot[graph.find(node)] === 1) on.push(x, y)
    }
  }
  return bytesOf(Uint32Array.from(on))
}

/**
 * Unions each tile's side labels with its neighbours' across the tile
 * sides; a component with a strong pixel anywhere is an edge. Each tile is
 * told the edge pixels on its core's side and in the reach around it, which
 * is all its own labelling cannot see.
 */
export function reducer (_params: Params, grid: GridInfo): Reducer {
  const labels: Uint32Array[] = []
  const strongOf: Uint32Array[] = []
  return {
    add: (tile, summary) => {
      const words = u32Words(summary)
      strongOf[tile] = words.subarray(1, 1 + words[0]!)
      labels[tile] = words.subarray(1 + words[0]!)
    },
    finish: () => {
      const graph = new BandGraph(grid, labels)
      for (const core of grid.cores) graph.joinAcross(core)
      const edgeRoot = edgeRoots(graph, strongOf, grid.cores.length)
      return { perTile: grid.cores.map(core => edgesAround(graph, edgeRoot, core, grid)) }
    },
  }
}
