/** How a peer spreads the jobs it coordinates: as the cost model says (`auto`), or over the swarm whatever they cost. */
export const SPREAD_POLICIES = ['auto', 'always'] as const
export type SpreadPolicy = typeof SPREAD_POLICIES[number]
