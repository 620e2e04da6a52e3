/** MQTT topic-filter matching (`+` one level, `#` the rest), per MQTT 3.1.1 §4.7. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  // Filters starting with a wildcard do not match `$`-topics ($SYS/…).
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * Whether `filter` is a valid topic filter: non-empty, `+` only as a whole
 * level, `#` only as the whole last level (MQTT 3.1.1 §4.7.1).
 */
export function isTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.length > 1024) return false;
  const levels = filter.split('/');
  return levels.every(
    (level, i) =>
      (level === '#' && i === levels.length - 1) ||
      level === '+' ||
      (!level.includes('#') && !level.includes('+')),
  );
}

/**
 * Whether every topic `subscription` (a filter) can match is matched by
 * `allowed`: the check that keeps a device's subscriptions inside its ACL.
 * A wildcard in the subscription is covered only by a wildcard at least as
 * wide in `allowed`; `a/#` covers `a` itself, as it matches it.
 */
export function filterCovers(allowed: string, subscription: string): boolean {
  const a = allowed.split('/');
  const s = subscription.split('/');
  if (subscription.startsWith('$') !== allowed.startsWith('$')) return false;
  for (let i = 0; i < s.length; i++) {
    if (a[i] === '#') return true;
    if (i >= a.length || s[i] === '#') return false;
    if (a[i] !== '+' && a[i] !== s[i]) return false;
  }
  return a.length === s.length || (a.length === s.length + 1 && a[s.length] === '#');
}
