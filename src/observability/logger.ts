/**
 * Structured logging with pino. Each component takes a child logger
 * (`logger.child({ component: 'mqtt' })`). Counts and latencies are metrics,
 * not log lines: log what an operator must read, once.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * `toStderr` is for commands whose stdout carries their result (`canopy simulate`).
 */
export function createLogger(level: LevelWithSilent = 'info', toStderr = false): Logger {
  const options = {
    level,
    base: { service: 'canopy' },
    // Secrets that may sit in config or request objects never reach a log line.
    redact: {
      paths: [
        '*.password',
        '*.secret',
        '*.secretAccessKey',
        '*.token',
        'config.mqtt.client.password',
      ],
      censor: '***',
    },
  };
  return toStderr ? pino(options, pino.destination(2)) : pino(options);
}

/** A logger that drops everything; for tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
