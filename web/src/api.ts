/**
 * Requests to the Canopy API (same origin). Every failure becomes an ApiError
 * whose message says what went wrong and, where the dashboard knows, a hint
 * saying what to do about it.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** Dispatched on window when the API answers 401: the session ended or never was (session.tsx). */
export const UNAUTHORIZED_EVENT = 'canopy-unauthorized';

const UNREACHABLE_HINT =
  'Is Canopy running? Start it with `npm start` (or `canopy up`), then retry.';

function isAbort(err: unknown): boolean {
  return err instanceof DOMException && err.name === 'AbortError';
}

export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (isAbort(err)) throw err;
    throw new ApiError(0, 'NETWORK', 'Canopy is not reachable.', UNREACHABLE_HINT);
  }
  if (response.ok) return response;
  if (response.status === 401 && !path.startsWith('/api/session'))
    window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
  let code = `HTTP_${response.status}`;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // Not the API's JSON error (a proxy's page, say): the status line is all there is.
  }
  throw new ApiError(response.status, code, message, hintFor(response.status, code));
}

function hintFor(status: number, code: string): string | undefined {
  if (code === 'CANOPY_ALERT_NOT_FOUND')
    return 'Resolved alerts are purged after their retention; pick one from the list of alerts.';
  if (code === 'CANOPY_API_NOT_FOUND')
    return 'This Canopy does not serve that part of the API: it may be turned off in its configuration, or older than this dashboard.';
  if (status === 401)
    return 'This Canopy requires signing in: open it with a session or API key that has the read scope.';
  if (status === 403)
    return 'Your session or API key lacks the scope this needs (read, query or operate).';
  if (status === 502 || status === 504) return UNREACHABLE_HINT;
  if (status >= 500) return 'Canopy failed to answer; its log says why. Retry in a moment.';
  return undefined;
}

type Params = Record<string, string | number | readonly string[] | undefined | null>;

/** `path?k=v&…`, skipping empty values and repeating array values. */
export function withQuery(path: string, params: Params = {}): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) for (const v of value as readonly string[]) search.append(key, v);
    else search.set(key, String(value));
  }
  const text = search.toString();
  return text === '' ? path : `${path}?${text}`;
}

export async function getJson<T>(path: string, params?: Params, signal?: AbortSignal): Promise<T> {
  const response = await request(withQuery(path, params), {
    headers: { accept: 'application/json' },
    ...(signal ? { signal } : {}),
  });
  return (await response.json()) as T;
}

export async function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const response = await request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  return (await response.json()) as T;
}

export { isAbort };
