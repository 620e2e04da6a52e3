/**
 * The rules a fresh Canopy writes to its rules file, tuned to what
 * `canopy up --simulate` produces so a newcomer sees alerts open and clear:
 *
 * - The plants API (src/simulator/plants.ts) waters each plant every 20–40 h
 *   and its soil moisture falls about 1 %/h from 75–90 % (never below 12 %),
 *   so the driest plants cross 30 % and a few 20 % before watering. The
 *   poll source files them under location `conservatory`, once a minute.
 * - Simulated temperatures (src/simulator/fleet.ts, plants.ts) stay within
 *   about 17–27 °C; spikes beyond the physical range are single readings, so
 *   the temperature rule waits for 3 in a row.
 *
 * Every rule notifies the `log` channel, the one notifier of the default
 * configuration; `starterRulesFor` adapts them to a configuration without it.
 */
import type { z } from 'zod';
import { ruleSetSchema, type RuleNotify, type RuleSet } from './schema.js';

const STARTER_INPUT: z.input<typeof ruleSetSchema> = {
  rules: [
    {
      id: 'conservatory-soil-moisture',
      kind: 'reading',
      description: 'A plant in the conservatory is drying out.',
      select: { sensorTypes: ['soil_moisture'], locations: ['conservatory'] },
      warning: { below: 30 },
      critical: { below: 20 },
      clear: { consecutive: 2 },
      notify: {
        open: ['log'],
        tiers: [
          { after: '0s', channels: ['log'] },
          { after: '1h', channels: ['log'] },
        ],
        reminderEvery: '30m',
      },
    },
    {
      id: 'temperature',
      kind: 'reading',
      description: 'Temperature outside the comfortable band for plants and people.',
      select: { sensorTypes: ['temperature'] },
      warning: { below: 10, above: 30 },
      critical: { below: 5, above: 35 },
      overrides: [
        {
          location: 'conservatory',
          warning: { below: 15, above: 30 },
          critical: { below: 10, above: 35 },
        },
      ],
      open: { consecutive: 3 },
      clear: { consecutive: 3 },
      notify: { open: ['log'], tiers: [{ channels: ['log'] }] },
    },
    {
      id: 'sensor-silent',
      kind: 'no-data',
      description: 'A sensor has sent nothing for 5 minutes.',
      after: '5m',
      per: 'sensor',
      severity: 'warning',
      notify: { open: ['log'] },
    },
    {
      id: 'dead-letters',
      kind: 'pipeline',
      description: 'More than 5 % of incoming readings are rejected.',
      signal: 'dead-letter-rate',
      above: 0.05,
      window: '5m',
      notify: { open: ['log'] },
    },
    {
      id: 'ingest-stopped',
      kind: 'pipeline',
      description: 'No reading has arrived from any source for 2 minutes.',
      signal: 'ingest-stopped',
      after: '2m',
      notify: { open: ['log'] },
    },
    {
      id: 'job-failed',
      kind: 'pipeline',
      description: 'A batch job failed.',
      signal: 'job-failed',
      notify: { open: ['log'] },
    },
    {
      id: 'quality-failed',
      kind: 'pipeline',
      description: 'A data-quality suite failed.',
      signal: 'quality-failed',
      severity: 'warning',
      notify: { open: ['log'] },
    },
    {
      id: 'deadline-missed',
      kind: 'pipeline',
      description: 'A scheduled workflow missed its deadline.',
      signal: 'deadline-missed',
      notify: { open: ['log'] },
    },
  ],
};

/** The starter rules, parsed (defaults filled in). Valid with the default configuration. */
export const STARTER_RULES: RuleSet = ruleSetSchema.parse(STARTER_INPUT);

/**
 * The starter rules for a configuration whose notifiers are `channels`: each
 * notify list keeps only the configured channels, and a notify policy left
 * with none is dropped (routes in `alerting.routes` still deliver), so a
 * configuration without the `log` notifier still starts with valid rules.
 */
export function starterRulesFor(channels: ReadonlySet<string>): RuleSet {
  return {
    rules: STARTER_RULES.rules.map((rule) => {
      if (rule.notify === undefined) return rule;
      const notify = keepChannels(rule.notify, channels);
      const { notify: _dropped, ...rest } = rule;
      return notify === undefined ? rest : { ...rule, notify };
    }),
  };
}

function keepChannels(notify: RuleNotify, channels: ReadonlySet<string>): RuleNotify | undefined {
  const open = notify.open.filter((c) => channels.has(c));
  const tiers = notify.tiers
    .map((tier) => ({ ...tier, channels: tier.channels.filter((c) => channels.has(c)) }))
    .filter((tier) => tier.channels.length > 0);
  if (open.length === 0 && tiers.length === 0) return undefined;
  return { ...notify, open, tiers };
}
