import { describe, expect, it } from 'vitest';
import { filterCovers, isTopicFilter, topicMatches } from './topic.js';

describe('isTopicFilter', () => {
  it.each([
    ['sensors/dev-1/#', true],
    ['sensors/+/temperature', true],
    ['#', true],
    ['+', true],
    ['iot/data', true],
    ['', false],
    ['sensors/#/x', false],
    ['sensors/dev#', false],
    ['sensors/de+v', false],
  ])('%s → %s', (filter, expected) => {
    expect(isTopicFilter(filter)).toBe(expected);
  });
});

describe('filterCovers', () => {
  it.each([
    ['sensors/dev-1/#', 'sensors/dev-1/#', true],
    ['sensors/dev-1/#', 'sensors/dev-1/temp', true],
    ['sensors/dev-1/#', 'sensors/dev-1/+', true],
    ['sensors/dev-1/#', 'sensors/dev-1', true],
    ['sensors/dev-1/#', 'sensors/+/temp', false],
    ['sensors/dev-1/#', 'sensors/#', false],
    ['sensors/dev-1/#', '#', false],
    ['sensors/dev-1/#', 'sensors/dev-2/temp', false],
    ['sensors/dev-1/#', 'sensors/dev-10/temp', false],
    ['a/+', 'a/#', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/+', 'a/b/c', false],
    ['#', '$SYS/x', false],
  ])('%s covers %s: %s', (allowed, subscription, expected) => {
    expect(filterCovers(allowed, subscription)).toBe(expected);
  });

  it('agrees with topicMatches: a covered subscription matches no topic the ACL refuses', () => {
    // Oracle: over a small universe of topics, whatever `subscription` matches `allowed` must match.
    const levels = ['a', 'b', 'dev-1', 'dev-2'];
    const topics: string[] = [];
    for (const x of levels) {
      topics.push(x);
      for (const y of levels) {
        topics.push(`${x}/${y}`);
        for (const z of levels) topics.push(`${x}/${y}/${z}`);
      }
    }
    const filters = [
      ...topics.slice(0, 40),
      '#',
      '+',
      'a/#',
      'a/+',
      'a/+/b',
      '+/dev-1/#',
      'a/dev-1/#',
      '+/+',
    ];
    for (const allowed of filters)
      for (const subscription of filters) {
        if (!filterCovers(allowed, subscription)) continue;
        for (const topic of topics)
          if (topicMatches(subscription, topic))
            expect(topicMatches(allowed, topic), `${allowed} ⊇ ${subscription} at ${topic}`).toBe(
              true,
            );
      }
  });
});
