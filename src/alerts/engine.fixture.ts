/**
 * Test support for the engine tests: deterministic ids, rule sets from the
 * input form, readings, and an in-memory store that applies AlertChanges the
 * way the real stores do (what a restart reloads).
 */
import type { Alert, AlertChanges, AlertEvent, OutboxEntry, SubjectState } from '../core/alerts.js';
import type { AlertRouteConfig, Thresholds } from '../config/schema.js';
import { AlertEngine, type EngineReading } from './engine.js';
import { ruleSetSchema, type RuleSet } from './rules/schema.js';
import type { z } from 'zod';

export const T0 = Date.UTC(2026, 5, 1, 12, 0, 0);
export const MIN = 60_000;

export function counter(prefix = 'id'): () => string {
  let n = 0;
  return () => `${prefix}-${++n}`;
}

export function rules(input: z.input<typeof ruleSetSchema>['rules']): RuleSet {
  return ruleSetSchema.parse({ rules: input });
}

export function reading(
  sensorId: string,
  value: number | null,
  eventTime: number,
  more: Partial<EngineReading> = {},
): EngineReading {
  return {
    sensorId,
    sensorType: 'temperature',
    location: null,
    eventTime,
    value,
    isAnomaly: false,
    anomalyReasons: [],
    ...more,
  };
}

export function makeEngine(
  set: RuleSet,
  o: {
    routes?: AlertRouteConfig[];
    newId?: () => string;
    publicUrl?: string;
    bounds?: (id: string, type: string | null) => { warning?: Thresholds; critical?: Thresholds };
  } = {},
): AlertEngine {
  return new AlertEngine({
    rules: set,
    routes: o.routes ?? [],
    configuredBounds: o.bounds ?? (() => ({})),
    newId: o.newId ?? counter(),
    ...(o.publicUrl === undefined ? {} : { publicUrl: o.publicUrl }),
  });
}

/** Applies change sets like an AlertStore: alerts replaced by id, outbox idempotent, states upserted/deleted. */
export class MemoryAlertStore {
  readonly alerts = new Map<string, Alert>();
  readonly events: AlertEvent[] = [];
  readonly outbox = new Map<string, OutboxEntry>();
  readonly states = new Map<string, SubjectState>();

  apply(c: AlertChanges): AlertChanges {
    for (const a of c.alerts) this.alerts.set(a.id, structuredClone(a));
    this.events.push(...c.events);
    for (const o of c.outbox) if (!this.outbox.has(o.id)) this.outbox.set(o.id, o);
    for (const s of c.subjectStates)
      this.states.set(`${s.ruleId}|${s.subject}`, structuredClone(s));
    for (const s of c.clearedSubjectStates) this.states.delete(`${s.ruleId}|${s.subject}`);
    return c;
  }

  active(): Alert[] {
    return [...this.alerts.values()].filter((a) => a.state !== 'resolved');
  }

  subjectStates(): SubjectState[] {
    return [...this.states.values()];
  }

  kinds(): string[] {
    return this.events.map((e) => e.kind);
  }

  /** Outbox entries as `kind:channel`, in insertion order. */
  sent(): string[] {
    return [...this.outbox.values()].map((o) => `${o.payload.event}:${o.channel}`);
  }
}
