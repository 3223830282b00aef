/**
 * Where a process's JavaScript thread spent its time, from a V8 CPU profile
 * (node --cpu-prof): each sample's frame, and the frames above it, put in one
 * of a few kinds of work. libvips' own threads are not in such a profile:
 * the bench counts them from /proc.
 */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

/** Kinds of work: a sample goes to the kind of its nearest frame (from the leaf up) that one matches, the first in this order. */
const KINDS: Array<[string, RegExp]> = [
  ['idle', /^\(idle\)/],
  ['garbage collection', /^\(garbage collector\)/],
  ['module loading and compiling', /node:internal\/(modules|bootstrap)|compileSourceTextModule|compileFunction|wrapSafe|amaro|^dlopen /],
  ['zstd (compress, inflate)', /^processChunkSync |packPixels|unpackPixels/],
  ['checksums and digests', /^crc32 |tileChecksum|inputDigest|resultDigest|createHash|node:internal\/crypto\/hash/],
  ['Noise encryption', /libp2p-noise|noise-crypto|node:internal\/crypto\/(cipher|keys)|chaCha20/],
  ['streams (yamux, framing, sockets)', /libp2p-yamux|it-length-prefixed|uint8arraylist|it-pushable|it-pipe|protocol\/framing|^writeBuffer |^writev|onStreamRead|node:net|stream_base|node:buffer/],
  ['libp2p (connections, identify, peer store)', /@libp2p\/|\/libp2p\/dist|multiformats|@multiformats/],
  ['cost model calibration (first use of a pipeline)', /job\/costs/],
  ['tile cut and placement', /imaging\/raw|placeTile|tileInput|extract |blit /],
  ['sharp calls (the JavaScript side)', /sharp\/dist/],
  ['gossip and discovery', /gossipsub|pubsub|swarm\/(gossip|discovery)/],
  ['message schemas (zod)', /zod/],
]

function kindOf (stack: ProfileNode[]): string {
  for (const node of stack) {
    const frame = `${node.callFrame.functionName} ${node.callFrame.url}`
    for (const [kind, pattern] of KINDS) if (pattern.test(frame)) return kind
  }
  return 'other JavaScript'
}

/** Milliseconds by kind of work in one CPU profile. */
export function profileKinds (file: string): Record<string, number> {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const kinds = new Map<number, string>()
  const out: Record<string, number> = {}
  for (const [i, id] of profile.samples.entries()) {
    let kind = kinds.get(id)
    if (kind === undefined) {
      const stack: ProfileNode[] = []
      for (let n = byId.get(id); n !== undefined; n = byId.get(parent.get(n.id) ?? -1)) stack.push(n)
      kind = kindOf(stack)
      kinds.set(id, kind)
    }
    out[kind] = (out[kind] ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000
  }
  return out
}

/** Several profiles' kinds, added up. */
export function addKinds (all: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const kinds of all) for (const [k, ms] of Object.entries(kinds)) out[k] = (out[k] ?? 0) + ms
  return out
}
