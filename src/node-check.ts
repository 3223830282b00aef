/**
 * Whether this Node can run tileswarm. No imports, and nothing an old Node
 * cannot parse: the entries (peer.ts, index.ts) ask before they load the rest.
 */

/** The oldest Node major tileswarm runs on (libp2p needs Promise.withResolvers). */
const MIN_NODE_MAJOR = 22

/** Why this Node cannot run tileswarm, in one line; undefined where it can. */
export function oldNodeProblem (version: string = process.version): string | undefined {
  if (Number(version.replace(/^v/, '').split('.')[0]) >= MIN_NODE_MAJOR) return undefined
  return `needs Node.js ${MIN_NODE_MAJOR} or newer (this is ${version}); run it as the installed tileswarm command, through npm scripts or with node_modules/.bin/node, which bring Node 24`
}
