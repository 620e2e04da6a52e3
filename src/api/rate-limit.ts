/**
 * Per-caller request rate limit of the HTTP API (`http.rateLimit`), with
 * @fastify/rate-limit's counting store.
 *
 * The key is who is calling: the API key or the session user the auth hook
 * found, or the client address when there is none (authentication off, or an
 * open route). So one leaked or runaway key cannot starve the others, and
 * many keys behind one proxy address are counted apart. Over the limit the
 * API answers 429 CANOPY_API_RATE_LIMITED with `Retry-After` (seconds until
 * the window ends).
 *
 * The check is a root `onRequest` hook registered after the auth hook, so it
 * sees `request.principal` and covers every route whatever order routes and
 * plugins load in. Requests refused by authentication never reach it.
 */
import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CanopyError } from '../core/errors.js';
import type { Metrics } from '../observability/metrics.js';

export interface HttpRateLimit {
  /** Requests per key per window. */
  max: number;
  windowMs: number;
}

/** Probes that orchestrators call often and that must keep answering under load. */
const UNLIMITED_ROUTES = new Set(['/healthz', '/readyz']);

/** The caller a request is counted against. */
export function rateLimitKey(request: FastifyRequest): string {
  const principal = request.principal;
  if (principal === null || principal.kind === 'anonymous') return `ip:${request.ip}`;
  return `${principal.kind}:${principal.id}`;
}

export function registerRateLimit(
  app: FastifyInstance,
  limit: HttpRateLimit,
  metrics: Metrics,
): void {
  void app.register(fastifyRateLimit, {
    global: false,
    max: limit.max,
    timeWindow: limit.windowMs,
    keyGenerator: rateLimitKey,
  });
  let check: ReturnType<FastifyInstance['createRateLimit']> | undefined;
  app.addHook('onRequest', async (request, reply) => {
    if (UNLIMITED_ROUTES.has(request.routeOptions.url ?? '')) return;
    // The decorator exists once the plugin has loaded, which is before the first request.
    check ??= app.createRateLimit();
    const result = await check(request);
    if (result.isAllowed || !result.isExceeded) return;
    metrics.httpRateLimited.inc();
    reply.header('retry-after', String(Math.max(1, result.ttlInSeconds)));
    throw new CanopyError(
      'CANOPY_API_RATE_LIMITED',
      `more than ${result.max} requests in ${limit.windowMs / 1000} s from ${rateLimitKey(request)} (http.rateLimit); retry after ${result.ttlInSeconds} s`,
    );
  });
}
