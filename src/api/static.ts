/**
 * The dashboard's static files: the single-page app built into `web/dist`
 * (`npm run build:web`), served at `/`.
 *
 * - A file that exists under the dist folder is sent as it is (ETag,
 *   Last-Modified, HEAD and ranges by @fastify/static). Files under
 *   `/assets/` carry a content hash in their names, so they are cached for a
 *   year as immutable; everything else (index.html first) is `no-cache`, so a
 *   new build shows up on the next load.
 * - A missing `/assets/…` file is 404: a stale page asking for an old chunk
 *   must fail visibly, not get HTML back as JavaScript.
 * - Any other GET outside `/api/` falls back to index.html (the app's own
 *   routes); `/api/…` paths that no route matched stay the API's JSON 404.
 * - Without a build (no index.html), every such path answers 503 with a page
 *   saying how to build it. The folder is looked at on each request, so a
 *   build made while Canopy runs is served at once.
 *
 * Paths are decoded once and must stay inside the dist folder: `..`
 * segments, backslashes, NUL and dot-files are refused (404) before the file
 * system is touched; @fastify/send checks `..` again.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable';

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Canopy</title></head>
<body><h1>Dashboard not built: run npm run build:web</h1>
<p>The API is running; the dashboard's files are missing from web/dist.</p></body></html>
`;

/**
 * `web/dist` of the package: this module is `src/api/static.ts` under tsx
 * and `dist/api/static.js` after `npm run build`, two levels below the
 * package root either way.
 */
export function defaultWebDist(): string {
  return fileURLToPath(new URL('../../web/dist', import.meta.url));
}

/** The dist-relative path of a URL path, or null when it would leave the folder or names a dot-file. */
export function safeRelativePath(urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const segments = decoded.split('/').filter((s) => s !== '');
  if (segments.some((s) => s.startsWith('.'))) return null;
  return segments.join('/');
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

export function registerStaticRoutes(app: FastifyInstance, distDir: string): void {
  const root = path.resolve(distDir);

  const notFound = (reply: FastifyReply): FastifyReply => {
    reply.callNotFound();
    return reply;
  };

  const serve = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const urlPath = request.url.split('?', 1)[0]!;
    if (urlPath === '/api' || urlPath.startsWith('/api/')) return notFound(reply);
    if (!(await isFile(path.join(root, 'index.html'))))
      return reply
        .status(503)
        .header('cache-control', 'no-store')
        .type('text/html; charset=utf-8')
        .send(NOT_BUILT_PAGE);
    const relative = safeRelativePath(urlPath);
    if (relative === null) return notFound(reply);
    if (relative !== '' && (await isFile(path.join(root, relative)))) {
      const cache = relative.startsWith('assets/') ? IMMUTABLE_CACHE : 'no-cache';
      return reply.header('cache-control', cache).sendFile(relative, root, { cacheControl: false });
    }
    if (relative === 'assets' || relative.startsWith('assets/')) return notFound(reply);
    return reply
      .header('cache-control', 'no-cache')
      .sendFile('index.html', root, { cacheControl: false });
  };

  // Its own context: @fastify/static's reply decorator and these routes stay out of the API's way.
  void app.register(async (scope) => {
    await scope.register(fastifyStatic, { serve: false });
    scope.get('/', serve);
    scope.get('/*', serve);
  });
}
