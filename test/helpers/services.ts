/**
 * Reaching the machine's real services from tests (DESIGN.md §5). With
 * CI=true an unreachable service is a test failure; elsewhere the tests that
 * need it are skipped with a one-line reason.
 */
import net from 'node:net';

export const inCI = process.env.CI === 'true';

export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Whether tests needing `name` on `port` should run: true if it answers, or
 * in CI (where the test then fails on its own connection error).
 */
export async function serviceForTests(name: string, port: number): Promise<boolean> {
  if (await portOpen(port)) return true;
  if (inCI) return true;
  console.warn(
    `skipping ${name} tests: nothing listens on 127.0.0.1:${port} (set CI=true to make this a failure)`,
  );
  return false;
}

/**
 * Kafka brokers for the Kafka bus suite, from `KAFKA_BROKERS` (`host:port`,
 * comma-separated). No Kafka broker can run on the development or CI
 * machines, so unlike the services above an unset variable leaves the suite
 * out even under CI=true, with a one-line reason.
 */
export function kafkaBrokersForTests(): string[] {
  const brokers = (process.env.KAFKA_BROKERS ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
  if (brokers.length === 0)
    console.warn(
      'skipping the Kafka bus conformance suite: KAFKA_BROKERS is not set (no Kafka broker runs on this machine or in CI; set KAFKA_BROKERS=host:port to run it)',
    );
  return brokers;
}
