import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import type { Config } from './config/schema.js';

/** Structured JSON logs (pino), or a human-readable stream for a terminal (`format: pretty`). */
export function createLogger(logging: Config['logging']): Logger {
  const options = { level: logging.level, base: { service: 'openclaw-edge' } };
  if (logging.format === 'pretty') {
    return pino(options, pretty({ colorize: process.stdout.isTTY === true, sync: true }));
  }
  return pino(options);
}
