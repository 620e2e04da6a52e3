/**
 * `GET /api/live`: the dashboard's Server-Sent Events stream, and the
 * in-memory view of ingest it is built from.
 *
 * Events (the contract is docs/api.md, "Dashboard endpoints"):
 * - `stats` at connect and every second: readings per second, active sensors,
 *   open alerts by severity;
 * - `readings` after commits, at most every `readingsIntervalMs`: the newest
 *   reading of each sensor committed since the previous event;
 * - `alert` on each alert change;
 * - a `: ping` comment every 15 s, so proxies keep an idle stream open.
 *
 * Costs on the ingest path: `readingsCommitted` is called once per group
 * commit. Without a connected client it only adds the group's size to the
 * rate rings; with clients it also walks the group once to keep the newest
 * reading and last event time per sensor.
 *
 * Back-pressure: every client's socket buffer is checked before and after
 * each write; a client more than `maxBufferedBytes` behind is disconnected
 * (`canopy_live_clients_dropped_total`) rather than buffered without bound.
 * EventSource reconnects by itself and gets a fresh `stats` at once.
 *
 * `close()` ends every stream and refuses new ones, so the HTTP server can
 * close (the API calls it before the server stops).
 */
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { Alert } from '../core/alerts.js';
import type { Clock } from '../core/clock.js';
import type { HotStore, NewReading } from '../core/store.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { alertToWire } from './alerts.js';
import { IngestRate } from './ingest-rate.js';

export type SensorHealth = 'ok' | 'late' | 'silent' | 'unknown';

/** Interval assumed for a sensor without one: `ok` for 2 min, `late` for 10. */
const DEFAULT_INTERVAL_MS = 60_000;

/**
 * ok within 2 intervals of its last reading, late within 10, silent beyond;
 * unknown when never seen. A last reading ahead of `now` counts as ok.
 */
export function sensorHealth(
  lastSeen: number | null,
  intervalMs: number | null,
  now: number,
): SensorHealth {
  if (lastSeen === null) return 'unknown';
  const interval = intervalMs ?? DEFAULT_INTERVAL_MS;
  const age = now - lastSeen;
  if (age <= 2 * interval) return 'ok';
  if (age <= 10 * interval) return 'late';
  return 'silent';
}

export interface AlertCounts {
  critical: number;
  warning: number;
  /** Canopy rules have no info severity: always 0, kept for the dashboard's badges. */
  info: number;
}

export function countAlerts(alerts: readonly Pick<Alert, 'severity' | 'state'>[]): AlertCounts {
  const counts: AlertCounts = { critical: 0, warning: 0, info: 0 };
  for (const a of alerts) if (a.state !== 'resolved') counts[a.severity]++;
  return counts;
}

export interface LiveFeedOptions {
  clock: Clock;
  /** Seeds last-seen times and intervals when the first client connects, and refreshes them. */
  store: Pick<HotStore, 'listSensors'>;
  metrics: Metrics;
  logger: Logger;
  /** The alerts not yet resolved; absent when alerting is off (counts are then 0). */
  activeAlerts?: () => readonly Pick<Alert, 'severity' | 'state'>[];
  statsIntervalMs?: number;
  readingsIntervalMs?: number;
  pingIntervalMs?: number;
  /** How far behind (bytes queued in its socket) a client may fall before it is dropped. */
  maxBufferedBytes?: number;
  /** How often last-seen times and intervals are re-read from the store while clients are on. */
  sensorRefreshMs?: number;
}

interface Client {
  res: ServerResponse;
}

interface SensorSeen {
  lastSeen: number | null;
  intervalMs: number | null;
}

/** The wire form of a reading in a `readings` event. */
function liveReading(r: NewReading) {
  return {
    sensor_id: r.sensorId,
    sensor_type: r.sensorType,
    location: r.location,
    unit: r.unit,
    timestamp: new Date(r.eventTime).toISOString(),
    value: r.value,
    imputed: r.imputed,
    is_anomaly: r.isAnomaly,
  };
}

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class LiveFeed {
  private readonly rate = new IngestRate();
  private readonly clients = new Set<Client>();
  /** Newest committed reading per sensor since the last `readings` event (only while clients are on). */
  private pending = new Map<string, NewReading>();
  private readonly sensors = new Map<string, SensorSeen>();
  private sensorsRefreshedAt = Number.NEGATIVE_INFINITY;
  private refreshing: Promise<void> | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private readingsTimer: NodeJS.Timeout | undefined;
  private lastReadingsAt = Number.NEGATIVE_INFINITY;
  private closed = false;

  private readonly statsIntervalMs: number;
  private readonly readingsIntervalMs: number;
  private readonly pingIntervalMs: number;
  private readonly maxBufferedBytes: number;
  private readonly sensorRefreshMs: number;

  constructor(private readonly o: LiveFeedOptions) {
    this.statsIntervalMs = o.statsIntervalMs ?? 1_000;
    this.readingsIntervalMs = o.readingsIntervalMs ?? 250;
    this.pingIntervalMs = o.pingIntervalMs ?? 15_000;
    this.maxBufferedBytes = o.maxBufferedBytes ?? 1024 * 1024;
    this.sensorRefreshMs = o.sensorRefreshMs ?? 60_000;
  }

  /** A committed group (a pipeline commit listener: returns at once, never throws). */
  readingsCommitted(readings: readonly NewReading[]): void {
    this.rate.add(readings.length, this.o.clock.now());
    if (this.clients.size === 0 || readings.length === 0) return;
    for (const r of readings) {
      const seen = this.sensors.get(r.sensorId);
      if (seen === undefined)
        this.sensors.set(r.sensorId, { lastSeen: r.eventTime, intervalMs: null });
      else if (seen.lastSeen === null || r.eventTime > seen.lastSeen) seen.lastSeen = r.eventTime;
      const newest = this.pending.get(r.sensorId);
      if (newest === undefined || r.eventTime >= newest.eventTime) this.pending.set(r.sensorId, r);
    }
    this.scheduleReadings();
  }

  /** Alerts as stored after a change (an alert-service listener). */
  alertsChanged(alerts: readonly Alert[]): void {
    for (const alert of alerts) this.broadcast(frame('alert', alertToWire(alert)));
  }

  readingsPerSecond(): number {
    return this.rate.perSecond(this.o.clock.now());
  }

  perMinute(): [number, number][] {
    return this.rate.perMinute(this.o.clock.now());
  }

  openAlerts(): AlertCounts {
    return countAlerts(this.o.activeAlerts?.() ?? []);
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Takes over the reply as an event stream (Fastify's hijack: hooks after this do not run). */
  attach(reply: FastifyReply): void {
    if (this.closed) {
      // Only between close() and the server's own refusal of new requests.
      void reply.status(503).type('text/plain').send('the server is stopping');
      return;
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx and similar proxies would otherwise hold events back.
      'x-accel-buffering': 'no',
    });
    const client: Client = { res };
    const first = this.clients.size === 0;
    this.clients.add(client);
    this.o.metrics.liveClients.set(this.clients.size);
    res.on('close', () => this.detach(client));
    res.socket?.setNoDelay(true);
    this.write(client, 'retry: 3000\n\n');
    if (first) {
      this.startTimers();
      // The tracker was idle while no one listened: bring it up to date, then tell this client.
      void this.refreshSensors(true).finally(() => this.sendStats(client));
    } else {
      this.sendStats(client);
    }
  }

  /** Ends every stream and stops the timers; later `attach` calls answer 503. */
  close(): void {
    this.closed = true;
    this.stopTimers();
    for (const client of [...this.clients]) {
      this.clients.delete(client);
      client.res.end();
    }
    this.o.metrics.liveClients.set(0);
  }

  private detach(client: Client): void {
    if (!this.clients.delete(client)) return;
    this.o.metrics.liveClients.set(this.clients.size);
    if (this.clients.size === 0) {
      this.stopTimers();
      this.pending = new Map();
    }
  }

  private startTimers(): void {
    this.statsTimer = setInterval(() => this.broadcastStats(), this.statsIntervalMs);
    this.pingTimer = setInterval(() => this.broadcast(': ping\n\n'), this.pingIntervalMs);
    this.statsTimer.unref();
    this.pingTimer.unref();
  }

  private stopTimers(): void {
    clearInterval(this.statsTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.readingsTimer);
    this.statsTimer = this.pingTimer = this.readingsTimer = undefined;
  }

  private activeSensors(now: number): number {
    let active = 0;
    for (const s of this.sensors.values())
      if (sensorHealth(s.lastSeen, s.intervalMs, now) === 'ok') active++;
    return active;
  }

  private stats(): string {
    const now = this.o.clock.now();
    return frame('stats', {
      time: new Date(now).toISOString(),
      readingsPerSecond: this.rate.perSecond(now),
      activeSensors: this.activeSensors(now),
      openAlerts: this.openAlerts(),
    });
  }

  private sendStats(client: Client): void {
    if (this.clients.has(client)) this.write(client, this.stats());
  }

  private broadcastStats(): void {
    this.broadcast(this.stats());
    if (this.o.clock.now() - this.sensorsRefreshedAt >= this.sensorRefreshMs)
      void this.refreshSensors(false);
  }

  /**
   * Re-reads last-seen times and intervals from the store (intervals are
   * known only there; other writers may have added readings). Merged by
   * taking the later time, so readings committed meanwhile are kept.
   */
  private refreshSensors(force: boolean): Promise<void> {
    if (this.refreshing !== undefined) return this.refreshing;
    if (!force && this.o.clock.now() - this.sensorsRefreshedAt < this.sensorRefreshMs)
      return Promise.resolve();
    this.refreshing = this.o.store
      .listSensors()
      .then((summaries) => {
        this.sensorsRefreshedAt = this.o.clock.now();
        for (const s of summaries) {
          const seen = this.sensors.get(s.sensorId);
          const lastSeen =
            seen?.lastSeen == null || (s.lastSeen !== null && s.lastSeen > seen.lastSeen)
              ? s.lastSeen
              : seen.lastSeen;
          this.sensors.set(s.sensorId, { lastSeen, intervalMs: s.intervalMs });
        }
      })
      .catch((err: unknown) => {
        this.o.logger.warn({ err }, 'could not read sensors for the live stream; retrying later');
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  /** At most one `readings` event per readingsIntervalMs; commits in between join the next one. */
  private scheduleReadings(): void {
    if (this.readingsTimer !== undefined) return;
    const wait = Math.max(0, this.lastReadingsAt + this.readingsIntervalMs - performance.now());
    this.readingsTimer = setTimeout(() => {
      this.readingsTimer = undefined;
      this.lastReadingsAt = performance.now();
      const batch = [...this.pending.values()].map(liveReading);
      this.pending = new Map();
      if (batch.length > 0) this.broadcast(frame('readings', batch));
    }, wait);
    this.readingsTimer.unref();
  }

  private broadcast(text: string): void {
    for (const client of this.clients) this.write(client, text);
  }

  private write(client: Client, text: string): void {
    const { res } = client;
    if (res.writableLength > this.maxBufferedBytes) {
      this.drop(client);
      return;
    }
    res.write(text);
    if (res.writableLength > this.maxBufferedBytes) this.drop(client);
  }

  private drop(client: Client): void {
    this.o.metrics.liveClientsDropped.inc();
    this.o.logger.warn(
      { buffered: client.res.writableLength },
      'live client too far behind; disconnecting it',
    );
    this.detach(client);
    client.res.destroy();
  }
}
