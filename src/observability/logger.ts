/**
 * Structured logging with pino: one JSON object per line. Each component takes
 * a child logger (`logger.child({ component: 'mqtt-broker' })`); HTTP requests
 * log with their `requestId`. Counts and latencies are metrics, not log lines:
 * log what an operator must read, once.
 *
 * Per-component levels (`log.levels` in config) are applied when a child is
 * created: pino calls `onChild` for every descendant, and a child whose
 * `component` binding is listed gets that level, more or less verbose than
 * the root's. Its own children (a request's logger under `api`) inherit it.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** Level by component name (the `component` binding of a child logger). */
  levels?: Readonly<Record<string, LevelWithSilent>>;
  /** Where lines go instead of stdout or stderr (tests capture them here). */
  destination?: DestinationStream;
}

/**
 * `level`: of the root logger and of every component not in `options.levels`.
 * `toStderr` is for commands whose stdout carries their result (`canopy simulate`).
 */
export function createLogger(
  level: LevelWithSilent = 'info',
  toStderr = false,
  options: LoggerOptions = {},
): Logger {
  const levels = options.levels ?? {};
  const pinoOptions = {
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
    ...(Object.keys(levels).length === 0
      ? {}
      : {
          onChild(child: Logger) {
            const component: unknown = child.bindings().component;
            if (typeof component !== 'string') return;
            const level = levels[component];
            if (level !== undefined) child.level = level;
          },
        }),
  };
  const destination = options.destination ?? (toStderr ? pino.destination(2) : undefined);
  return destination === undefined ? pino(pinoOptions) : pino(pinoOptions, destination);
}

/** A logger that drops everything; for tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
