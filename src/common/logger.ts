import { pino, stdTimeFunctions, type Logger } from 'pino'
import pretty from 'pino-pretty'
import type { Log, LogLevel } from './log.ts'

/**
 * A peer's log on stdout: one line each, timestamped, at or above `level`;
 * as text for people, or as JSON (one object a line, with the peer's id) for
 * a log collector.
 */
export function createLog (options: { level: LogLevel, format: 'text' | 'json' }): { log: Log, setPeer: (peerId: string) => void } {
  const root: Logger = options.format === 'json'
    ? pino({ level: options.level, base: {}, timestamp: stdTimeFunctions.isoTime, formatters: { level: label => ({ level: label }) } }, pino.destination({ dest: 1, sync: true }))
    : pino({ level: options.level, base: {} }, pretty({ sync: true, colorize: false, translateTime: 'UTC:yyyy-mm-dd\'T\'HH:MM:ss.l\'Z\'', ignore: 'peer', destination: 1 }))
  let logger = root
  return {
    log: (line, level = 'info') => { logger[level](line) },
    // Known once the peer is up: every line after says whose it is.
    setPeer: peerId => { logger = root.child({ peer: peerId }) },
  }
}
