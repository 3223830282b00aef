import { networkInterfaces } from 'node:os'

/** This machine's first IPv4 address off loopback, where other machines may reach it; undefined on a machine with none. */
export function outwardAddress (): string | undefined {
  return Object.values(networkInterfaces()).flat().find(i => i !== undefined && i.family === 'IPv4' && !i.internal)?.address
}
