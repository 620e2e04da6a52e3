/** Time ranges chosen on the pages: presets relative to now, or fixed from/to in the URL. */

export const RANGE_PRESETS = [
  { id: '15m', label: 'Last 15 minutes', ms: 15 * 60_000 },
  { id: '1h', label: 'Last hour', ms: 3_600_000 },
  { id: '6h', label: 'Last 6 hours', ms: 6 * 3_600_000 },
  { id: '24h', label: 'Last 24 hours', ms: 86_400_000 },
  { id: '7d', label: 'Last 7 days', ms: 7 * 86_400_000 },
  { id: '30d', label: 'Last 30 days', ms: 30 * 86_400_000 },
] as const;

export interface TimeRange {
  from: number;
  to: number;
  /** The preset's id, or null for a fixed range. */
  preset: string | null;
}

/** Reads `range=<preset>` or `from`/`to` (ISO 8601) from the URL; `fallback` is a preset id. */
export function rangeFromParams(
  params: URLSearchParams,
  fallback: string,
  now = Date.now(),
): TimeRange {
  const from = Date.parse(params.get('from') ?? '');
  const to = Date.parse(params.get('to') ?? '');
  if (!Number.isNaN(from) && !Number.isNaN(to) && from < to) return { from, to, preset: null };
  const id = params.get('range') ?? fallback;
  const preset =
    RANGE_PRESETS.find((p) => p.id === id) ?? RANGE_PRESETS.find((p) => p.id === fallback)!;
  return { from: now - preset.ms, to: now, preset: preset.id };
}

/** `params` with the range replaced by a fixed from/to. */
export function withFixedRange(params: URLSearchParams, from: number, to: number): URLSearchParams {
  const next = new URLSearchParams(params);
  next.delete('range');
  next.set('from', new Date(from).toISOString());
  next.set('to', new Date(to).toISOString());
  return next;
}

/** `params` with a preset range (fixed from/to removed). */
export function withPreset(params: URLSearchParams, preset: string): URLSearchParams {
  const next = new URLSearchParams(params);
  next.delete('from');
  next.delete('to');
  next.delete('base');
  next.set('range', preset);
  return next;
}
