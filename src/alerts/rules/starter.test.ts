import { describe, expect, it } from 'vitest';
import { configSchema } from '../../config/schema.js';
import { PIPELINE_SIGNALS, type ReadingRule } from './schema.js';
import { STARTER_RULES, starterRulesFor } from './starter.js';
import { ruleContextOf, validateRuleSet } from './validate.js';

const defaultContext = ruleContextOf(configSchema.parse({}));

describe('STARTER_RULES', () => {
  it('passes validation with the default configuration, whose only channel is log', () => {
    expect([...defaultContext.channels]).toEqual(['log']);
    expect(validateRuleSet(STARTER_RULES, defaultContext)).toEqual(STARTER_RULES);
  });

  it('watches conservatory soil moisture, temperature, silence and every pipeline signal', () => {
    const soil = STARTER_RULES.rules.find(
      (r) => r.id === 'conservatory-soil-moisture',
    ) as ReadingRule;
    expect(soil).toMatchObject({
      select: { sensorTypes: ['soil_moisture'], locations: ['conservatory'] },
      escalate: { consecutive: 3 },
      clear: { consecutive: 2 },
      notify: { reminderEvery: '30m' },
    });
    expect(soil.notify?.tiers.flatMap((t) => t.channels)).toContain('log');
    expect(
      STARTER_RULES.rules.some(
        (r) => r.kind === 'reading' && r.select.sensorTypes?.includes('temperature'),
      ),
    ).toBe(true);
    expect(STARTER_RULES.rules.find((r) => r.kind === 'no-data')).toMatchObject({
      after: '5m',
      per: 'sensor',
    });
    const signals = STARTER_RULES.rules.flatMap((r) => (r.kind === 'pipeline' ? [r.signal] : []));
    expect([...signals].sort()).toEqual([...PIPELINE_SIGNALS].sort());
    expect(
      STARTER_RULES.rules.find((r) => r.kind === 'pipeline' && r.signal === 'dead-letter-rate'),
    ).toMatchObject({ above: 0.05, window: '5m' });
    expect(
      STARTER_RULES.rules.find((r) => r.kind === 'pipeline' && r.signal === 'ingest-stopped'),
    ).toMatchObject({ after: '2m' });
  });

  it('keeps configured channels only when adapted to another configuration', () => {
    const adapted = starterRulesFor(new Set(['ops']));
    expect(adapted.rules.every((r) => r.notify === undefined)).toBe(true);
    expect(validateRuleSet(adapted, { ...defaultContext, channels: new Set(['ops']) })).toEqual(
      adapted,
    );
    expect(starterRulesFor(new Set(['log', 'ops']))).toEqual(STARTER_RULES);
  });
});
