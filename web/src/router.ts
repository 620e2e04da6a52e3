/**
 * Hash routing (`#/trends?type=temperature`): every page is a real link that
 * works when bookmarked, and the server needs no route table of its own.
 * Hashes that do not start with `#/` (an in-page anchor) are not routes.
 */
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  /** e.g. `/alerts/abc` */
  path: string;
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const body = hash.startsWith('#/') ? hash.slice(1) : '/';
  const q = body.indexOf('?');
  return q === -1
    ? { path: body, params: new URLSearchParams() }
    : { path: body.slice(0, q), params: new URLSearchParams(body.slice(q + 1)) };
}

/** `#/path?query` for a link's href. */
export function href(path: string, params?: URLSearchParams | Record<string, string>): string {
  const search = new URLSearchParams(params).toString();
  return `#${path}${search === '' ? '' : `?${search}`}`;
}

export function navigate(path: string, params?: URLSearchParams, replace = false): void {
  const target = href(path, params);
  if (replace) {
    history.replaceState(null, '', target);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    location.hash = target;
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const update = (): void => {
      if (location.hash === '' || location.hash.startsWith('#/'))
        setRoute(parseHash(location.hash));
    };
    window.addEventListener('hashchange', update);
    return () => window.removeEventListener('hashchange', update);
  }, []);
  return route;
}
