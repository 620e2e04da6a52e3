/**
 * The dashboard's first-load budget (docs/dashboard.md): the JavaScript and
 * CSS that index.html loads — its module script, module preloads and
 * stylesheets — weigh at most 80 KB gzipped, measured on a fresh build.
 */
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard } from './helpers/web-build.js';

const BUDGET_GZIP_BYTES = 80 * 1024;

/** The URLs index.html makes the browser load at once, by kind. */
function firstLoad(html: string): { scripts: string[]; styles: string[]; preloads: string[] } {
  const attr = (tag: string, name: string) => new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];
  const tags = (name: string) => html.match(new RegExp(`<${name}\\b[^>]*>`, 'g')) ?? [];
  const links = tags('link');
  return {
    scripts: tags('script')
      .filter((t) => attr(t, 'type') === 'module')
      .map((t) => attr(t, 'src')!),
    styles: links.filter((t) => attr(t, 'rel') === 'stylesheet').map((t) => attr(t, 'href')!),
    preloads: links.filter((t) => attr(t, 'rel') === 'modulepreload').map((t) => attr(t, 'href')!),
  };
}

describe('the dashboard bundle', () => {
  let dist: string;
  beforeAll(async () => {
    dist = await buildDashboard();
  }, 120_000);
  afterAll(() => rmSync(dist, { recursive: true, force: true }));

  it('loads only content-hashed files under /assets/ (the server caches them for a year)', () => {
    const { scripts, styles, preloads } = firstLoad(
      readFileSync(path.join(dist, 'index.html'), 'utf8'),
    );
    expect(scripts).toHaveLength(1);
    expect(styles.length).toBeGreaterThan(0);
    for (const url of [...scripts, ...styles, ...preloads]) {
      expect(url).toMatch(/^\/assets\/[\w-]+-[\w-]{8,}\.(js|css)$/);
      expect(readdirSync(path.join(dist, 'assets'))).toContain(path.basename(url));
    }
  });

  it(`keeps the first load within ${BUDGET_GZIP_BYTES / 1024} KB of gzipped JS and CSS`, () => {
    const { scripts, styles, preloads } = firstLoad(
      readFileSync(path.join(dist, 'index.html'), 'utf8'),
    );
    const files = [...new Set([...scripts, ...styles, ...preloads])].map((url) =>
      readFileSync(path.join(dist, url)),
    );
    const raw = files.reduce((n, f) => n + f.length, 0);
    const gzip = files.reduce((n, f) => n + gzipSync(f).length, 0);
    console.log(
      `dashboard first load: ${files.length} files, ${(raw / 1024).toFixed(1)} KB raw, ${(gzip / 1024).toFixed(1)} KB gzip (budget ${BUDGET_GZIP_BYTES / 1024} KB)`,
    );
    // Sanity: the app (Preact, uPlot, the pages) is in there, not an empty shell.
    expect(raw).toBeGreaterThan(50 * 1024);
    expect(gzip).toBeLessThan(raw);
    expect(gzip).toBeLessThanOrEqual(BUDGET_GZIP_BYTES);
  });
});
