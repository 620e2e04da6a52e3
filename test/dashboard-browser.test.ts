/**
 * The dashboard in a real browser: Debian's chromium driven by
 * playwright-core against a whole Canopy fed by its simulator (MQTT sensors
 * and polled plants), plus probe readings the test sends itself so every
 * check has a known answer. Screenshots of each page go to
 * test-artifacts/dashboard/ (gitignored), at desktop width in the light
 * theme and at phone width (390 px) in the dark theme.
 *
 * Needs /usr/bin/chromium (`.ci/run` installs it): with CI=true its absence
 * fails the tests; elsewhere they are skipped with a warning.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { inCI } from './helpers/services.js';
import { buildDashboard } from './helpers/web-build.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && !inCI)
  console.warn(
    `skipping dashboard browser tests: ${CHROMIUM} is missing (apt-get install chromium; set CI=true to make this a failure)`,
  );

const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/dashboard/', import.meta.url));
const MINUTE = 60_000;
const PROBE = 'dash-probe-temp';
const PROBE_LOCATION = 'probe-site/floor-1/zone-a';
/** A second sensor, whose value the live-update test changes (the probe's would clear its alert). */
const LIVE = 'dash-live-temp';
/** The probe's history: one reading a minute for the 30 minutes before the test starts. */
const HISTORY_POINTS = 30;
/** The first series colour of the charts (web/src/theme.ts PALETTE[0]), as RGB. */
const SERIES_RGB = [0x2f, 0x8f, 0x5b] as const;

const PAGES = [
  { name: 'overview', hash: '#/', ready: '[data-sensor]' },
  { name: 'trends', hash: '#/trends?type=temperature', ready: '.chart canvas' },
  { name: 'locations', hash: '#/locations?measure=temperature', ready: '.heat-cell a' },
  { name: 'anomalies', hash: '#/anomalies', ready: '.chart canvas' },
  { name: 'alerts', hash: '#/alerts', ready: '[data-alert]' },
  { name: 'pipeline', hash: '#/pipeline', ready: '.chart canvas' },
  { name: 'history', hash: '#/history', ready: 'textarea#sql' },
  { name: 'conservatory', hash: '#/conservatory', ready: '.plant' },
] as const;

describe.skipIf(!haveChromium && !inCI)('the dashboard in chromium', () => {
  let app: TestApp;
  let dist: string;
  let profile: string;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  /** Console errors and uncaught exceptions of the page, checked after each test. */
  const problems: string[] = [];
  const t0 = Date.now();

  const post = async (readings: Record<string, unknown>[]): Promise<Response> =>
    fetch(`${base}/api/data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(readings),
    });
  const probe = (value: number, at: number) => ({
    sensor_id: PROBE,
    sensor_type: 'temperature',
    unit: 'C',
    location: PROBE_LOCATION,
    value,
    timestamp: new Date(at).toISOString(),
  });
  const api = async <T>(url: string): Promise<T> =>
    (await fetch(`${base}${url}`)).json() as Promise<T>;

  /**
   * Runs `expression` in the page. The tests' tsconfig has no DOM types, so
   * what runs in the browser is written as text.
   */
  const inPage = <T>(expression: string): Promise<T> => page.evaluate<T>(expression);

  /** Loads the app afresh at `hash` (not a same-document hash change) and waits for `ready`. */
  async function open(hash: string, ready: string): Promise<void> {
    await page.goto('about:blank');
    await page.goto(`${base}/${hash}`);
    await page.waitForSelector(ready, { state: 'visible', timeout: 20_000 });
    await page.waitForFunction(`document.querySelector('.state-loading') === null`);
  }

  beforeAll(async () => {
    if (!haveChromium)
      throw new Error(
        `${CHROMIUM} is missing: install it (apt-get install chromium; .ci/run does)`,
      );
    dist = await buildDashboard();
    const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-dashboard-'));
    const rulesFile = path.join(dataDir, 'rules.yaml');
    writeFileSync(
      rulesFile,
      `rules:
  - id: probe-too-hot
    kind: reading
    select: { sensors: [${PROBE}] }
    critical: { above: 100 }
`,
    );
    app = await startTestApp(
      {
        http: { dashboardDir: dist },
        alerting: { rulesFile },
        workflows: { enabled: false },
        // Only the test exports to the lake, so the SQL check knows what bronze holds.
        lake: { exportIntervalMs: 3_600_000 },
        simulator: {
          enabled: true,
          sensors: 14,
          ratePerSecond: 14,
          plants: { enabled: true, count: 6, intervalMs: 5_000 },
        },
      },
      dataDir,
    );
    base = `http://127.0.0.1:${app.httpPort}`;

    const history = Array.from({ length: HISTORY_POINTS }, (_, i) =>
      probe(20 + i / 10, t0 - (HISTORY_POINTS - i) * MINUTE),
    );
    expect((await post(history)).status).toBe(200);
    // 150 °C: outside temperature's physical range (an anomaly) and above the rule's bound (an alert).
    expect((await post([probe(150, t0)])).status).toBe(200);
    expect((await post([{ ...probe(21, t0), sensor_id: LIVE }])).status).toBe(200);
    // A reading without a timestamp: a dead letter with its raw payload.
    expect((await post([{ sensor_id: PROBE, value: 1 }])).status).toBe(400);
    // Bronze and dead letters in the lake, for the anomalies, pipeline and history pages.
    await app.housekeeping.step('export');

    profile = mkdtempSync(path.join(tmpdir(), 'canopy-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 900 },
      colorScheme: 'light',
      // Numbers and times as the assertions spell them, whatever the machine's locale.
      locale: 'en-US',
      timezoneId: 'UTC',
      acceptDownloads: true,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`exception: ${err.message}`));
    mkdirSync(ARTIFACTS, { recursive: true });
  }, 180_000);

  beforeEach(() => {
    problems.length = 0;
  });

  afterAll(async () => {
    await context?.close();
    await app?.dispose();
    for (const dir of [dist, profile]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('loads every page without console errors, at desktop and phone width', async () => {
    for (const p of PAGES) {
      await open(p.hash, p.ready);
      await page.screenshot({ path: path.join(ARTIFACTS, `${p.name}.png`), fullPage: true });
    }
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ colorScheme: 'dark' });
    try {
      for (const p of PAGES) {
        await open(p.hash, p.ready);
        // Readable at phone width: nothing pushes the page sideways (wide tables scroll in place).
        const overflow = await inPage<number>(
          'document.documentElement.scrollWidth - window.innerWidth',
        );
        expect(overflow, `${p.name} overflows at 390 px`).toBeLessThanOrEqual(0);
        expect(await inPage('getComputedStyle(document.body).colorScheme')).toBe('dark');
        await page.screenshot({ path: path.join(ARTIFACTS, `${p.name}-390-dark.png`) });
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.emulateMedia({ colorScheme: 'light' });
    }
    expect(problems).toEqual([]);
  }, 120_000);

  it('is keyboard navigable: a skip link first, then the page links', async () => {
    await open('#/', '[data-sensor]');
    await page.keyboard.press('Tab');
    expect(await inPage('document.activeElement.textContent')).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect(await inPage('document.activeElement.id')).toBe('main');
    // From the top again: skip link, the brand, then the page links in order.
    await open('#/', '[data-sensor]');
    const focused: string[] = [];
    for (let i = 0; i < 4; i++) {
      await page.keyboard.press('Tab');
      focused.push(await inPage<string>('document.activeElement.textContent'));
    }
    expect(focused).toEqual(['Skip to content', 'Canopy', 'Overview', 'Sensor trends']);
    await page.keyboard.press('Enter');
    await page.waitForSelector('.chart canvas', { timeout: 20_000 });
    expect(new URL(page.url()).hash).toBe('#/trends');
    expect(problems).toEqual([]);
  }, 60_000);

  it('draws real data: the probe history on a chart, the heatmap leading to its trend', async () => {
    const from = new Date(t0 - HISTORY_POINTS * MINUTE - MINUTE / 2).toISOString();
    const to = new Date(t0 - MINUTE / 2).toISOString();
    const query = new URLSearchParams({ sensor: PROBE, from, to }).toString();
    await open(`#/trends?${query}`, '.chart canvas');
    const points = Number(await page.getAttribute('.chart', 'data-points'));
    expect(points).toBe(HISTORY_POINTS);
    // The same range asked of the API directly: every posted reading, as raw points.
    const direct = await api<{ series: { points: unknown[] }[] }>(
      `/api/series?${new URLSearchParams({ sensor: PROBE, from, to, points: '1000' }).toString()}`,
    );
    expect(direct.series[0]!.points).toHaveLength(HISTORY_POINTS);
    // The line is on the canvas: enough pixels of the series colour.
    const linePixels = await inPage<number>(`(() => {
      const canvas = document.querySelector('.chart canvas');
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      const [r, g, b] = ${JSON.stringify(SERIES_RGB)};
      let n = 0;
      for (let i = 0; i < data.length; i += 4) {
        const d = Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b);
        if (d < 60 && data[i + 3] > 200) n++;
      }
      return n;
    })()`);
    expect(linePixels).toBeGreaterThan(100);

    // The heatmap cell of the probe's location links to that location's temperature trend.
    await open('#/locations?measure=temperature', '.heat-cell a');
    await page.click(`.heat-cell a[title^="${PROBE_LOCATION}:"]`);
    await page.waitForSelector('.chart canvas', { timeout: 20_000 });
    const hash = new URLSearchParams(new URL(page.url()).hash.split('?')[1]);
    expect(hash.get('location')).toBe(PROBE_LOCATION);
    expect(Number(await page.getAttribute('.chart', 'data-points'))).toBeGreaterThan(0);

    // The anomaly sent at the start is on the timeline and in the list.
    await open(`#/anomalies?sensor=${PROBE}`, '.chart canvas');
    expect(Number(await page.getAttribute('.chart', 'data-points'))).toBe(1);
    expect(await page.textContent('.data-table tbody')).toContain(PROBE);
    expect(problems).toEqual([]);
  }, 90_000);

  it('updates a live value without reloading the page', async () => {
    await open('#/', `[data-sensor="${LIVE}"]`);
    const cell = `[data-sensor="${LIVE}"] [data-testid="sensor-value"]`;
    expect(await page.textContent(cell)).toBe('21 C');
    await inPage('window.notReloaded = true');
    const overviewRequests: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/api/overview')) overviewRequests.push(r.url());
    });
    expect((await post([{ ...probe(33.33, Date.now()), sensor_id: LIVE }])).status).toBe(200);
    await page.waitForFunction(
      `document.querySelector(${JSON.stringify(cell)}).textContent === '33.33 C'`,
      undefined,
      { timeout: 10_000 },
    );
    // The same document, and no fetch of the overview since: the value came over /api/live.
    expect(await inPage('window.notReloaded')).toBe(true);
    expect(overviewRequests).toEqual([]);
    expect(problems).toEqual([]);
  }, 60_000);

  it('acknowledges an alert through the UI, and the API reflects it', async () => {
    let alerts: { id: string; state: string; rule_id: string }[] = [];
    const deadline = Date.now() + 15_000;
    while (alerts.length === 0 && Date.now() < deadline) {
      alerts = (await api<{ data: typeof alerts }>(`/api/alerts?sensor_id=${PROBE}&state=active`))
        .data;
      if (alerts.length === 0) await new Promise((r) => setTimeout(r, 200));
    }
    expect(alerts).toHaveLength(1);
    const alert = alerts[0]!;
    expect(alert.rule_id).toBe('probe-too-hot');
    expect(alert.state).not.toBe('acknowledged');

    await open('#/alerts', `[data-alert="${alert.id}"]`);
    await page.click(`[data-alert="${alert.id}"] a`);
    await page.waitForSelector('[data-testid="alert-state"]');
    expect(new URL(page.url()).hash).toBe(`#/alerts/${alert.id}`);
    await page.fill('.alert-actions input[type="text"]', 'looking into it');
    await page.click('button:text-is("Acknowledge")');
    await page.waitForFunction(
      `document.querySelector('[data-testid="alert-state"]').textContent.startsWith('acknowledged')`,
      undefined,
      { timeout: 10_000 },
    );
    await page.screenshot({ path: path.join(ARTIFACTS, 'alert-detail.png'), fullPage: true });

    const after = await api<{
      alert: { state: string; acknowledged_by: string | null };
      events: { kind: string; actor: string | null; note: string | null }[];
    }>(`/api/alerts/${alert.id}`);
    expect(after.alert.state).toBe('acknowledged');
    expect(after.alert.acknowledged_by).toBe('dashboard');
    expect(after.events.some((e) => e.actor === 'dashboard' && e.note === 'looking into it')).toBe(
      true,
    );
    expect(problems).toEqual([]);
  }, 60_000);

  it('runs SQL over the lake: rows in the table, and the same rows as CSV', async () => {
    await open('#/history', 'textarea#sql');
    const sql = `SELECT sensor_id, count(*) AS n FROM bronze_readings WHERE sensor_id = '${PROBE}' GROUP BY ALL`;
    await page.fill('textarea#sql', sql);
    await page.click('button:text-is("Run query")');
    await page.waitForSelector('[data-testid="query-result"] tbody tr', { timeout: 20_000 });
    const rows = (await page.locator('[data-testid="query-result"] tbody tr').allInnerTexts()).map(
      (row) => row.split('\t'),
    );
    // Everything posted before the export: the history and the hot reading.
    expect(rows).toEqual([[PROBE, String(HISTORY_POINTS + 1)]]);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('button:text-is("Download CSV")'),
    ]);
    const csv = readFileSync(await download.path(), 'utf8')
      .trim()
      .split(/\r?\n/);
    expect(csv).toEqual(['sensor_id,n', `${PROBE},${HISTORY_POINTS + 1}`]);

    // An example query over the date range: a time column and a number make a chart.
    await page.selectOption('select[name="example"]', { label: 'Readings per minute' });
    await page.click('button:text-is("Put in editor")');
    expect(await page.inputValue('textarea#sql')).toContain("date_trunc('minute', event_time)");
    await page.click('button:text-is("Run query")');
    await page.waitForSelector('.chart canvas', { timeout: 20_000 });
    // One point per minute holding a reading: the probe's 30 minutes at least.
    expect(Number(await page.getAttribute('.chart', 'data-points'))).toBeGreaterThanOrEqual(
      HISTORY_POINTS,
    );
    await page.screenshot({ path: path.join(ARTIFACTS, 'history.png'), fullPage: true });
    expect(problems).toEqual([]);
  }, 60_000);

  it('shows dead letters with their raw payload on the pipeline page', async () => {
    await open('#/pipeline', '.chart canvas');
    const reason = 'MISSING_TIMESTAMP';
    await page.click(`tr:has(code:text-is("${reason}")) button`);
    await page.waitForSelector('.payloads pre', { timeout: 10_000 });
    expect(await page.textContent('.payloads')).toContain(`"sensor_id":"${PROBE}"`);
    expect(problems).toEqual([]);
  }, 60_000);
});
