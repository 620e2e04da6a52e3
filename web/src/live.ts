/**
 * One EventSource on /api/live for the whole app, opened on first use.
 * Pages subscribe to its events (`stats` each second, `readings` after
 * commits, `alert` on alert changes); the browser reconnects by itself after
 * a drop, and the header shows whether the stream is up.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Alert, LiveReading, LiveStats } from './types.js';

interface LiveEvents {
  stats: LiveStats;
  readings: LiveReading[];
  alert: Alert;
}

type EventName = keyof LiveEvents;
type Listener<K extends EventName> = (data: LiveEvents[K]) => void;
export type LiveStatus = 'connecting' | 'open' | 'reconnecting';

const listeners: { [K in EventName]: Set<Listener<K>> } = {
  stats: new Set(),
  readings: new Set(),
  alert: new Set(),
};
const statusListeners = new Set<(status: LiveStatus) => void>();
let source: EventSource | null = null;
let status: LiveStatus = 'connecting';

function setStatus(next: LiveStatus): void {
  status = next;
  for (const fn of statusListeners) fn(next);
}

/** After an answer that is not a stream (a 401, a 503), EventSource gives up; try again after this. */
const REOPEN_AFTER_MS = 5_000;

function ensureSource(): void {
  if (source !== null) return;
  const opened = new EventSource('/api/live');
  source = opened;
  opened.addEventListener('open', () => setStatus('open'));
  opened.addEventListener('error', () => {
    setStatus('reconnecting');
    if (opened.readyState === EventSource.CLOSED) {
      setTimeout(() => {
        if (source === opened) {
          source = null;
          ensureSource();
        }
      }, REOPEN_AFTER_MS);
    }
  });
  for (const name of Object.keys(listeners) as EventName[]) {
    opened.addEventListener(name, (event) => {
      let data: unknown;
      try {
        data = JSON.parse((event as MessageEvent<string>).data);
      } catch {
        return; // a malformed event is dropped; the next one carries the current state
      }
      for (const fn of listeners[name]) (fn as (d: unknown) => void)(data);
    });
  }
}

/** Opens the stream again, e.g. with the cookie of a new session. */
export function restartLive(): void {
  source?.close();
  source = null;
  setStatus('connecting');
  ensureSource();
}

export function subscribe<K extends EventName>(name: K, fn: Listener<K>): () => void {
  ensureSource();
  listeners[name].add(fn);
  return () => listeners[name].delete(fn);
}

/** Calls the latest `fn` for each `name` event while the component is mounted. */
export function useLive<K extends EventName>(name: K, fn: Listener<K>): void {
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => subscribe(name, (data) => latest.current(data)), [name]);
}

export function useLiveStatus(): LiveStatus {
  const [current, setCurrent] = useState(status);
  useEffect(() => {
    ensureSource();
    statusListeners.add(setCurrent);
    setCurrent(status);
    return () => statusListeners.delete(setCurrent);
  }, []);
  return current;
}
