/** The shell: skip link, header with the page links, theme toggle and live status, then the page. */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { restartLive, useLiveStatus } from './live.js';
import { useRoute, type Route } from './router.js';
import { SessionGate, signOut, useSession, type SessionState } from './session.js';
import { applyTheme, storedTheme, useEffectiveTheme, type ThemeChoice } from './theme.js';
import { AlertsPage } from './pages/alerts.js';
import { AnomaliesPage } from './pages/anomalies.js';
import { ConservatoryPage } from './pages/conservatory.js';
import { HistoryPage } from './pages/history.js';
import { LocationsPage } from './pages/locations.js';
import { OverviewPage } from './pages/overview.js';
import { PipelinePage } from './pages/pipeline.js';
import { TrendsPage } from './pages/trends.js';

interface PageDef {
  path: string;
  label: string;
  render: (route: Route) => JSX.Element;
}

const PAGES: PageDef[] = [
  { path: '/', label: 'Overview', render: () => <OverviewPage /> },
  { path: '/trends', label: 'Sensor trends', render: (r) => <TrendsPage params={r.params} /> },
  { path: '/locations', label: 'Locations', render: (r) => <LocationsPage params={r.params} /> },
  { path: '/anomalies', label: 'Anomalies', render: (r) => <AnomaliesPage params={r.params} /> },
  { path: '/alerts', label: 'Alerts', render: (r) => <AlertsPage route={r} /> },
  { path: '/pipeline', label: 'Pipeline health', render: () => <PipelinePage /> },
  { path: '/history', label: 'History', render: () => <HistoryPage /> },
  { path: '/conservatory', label: 'Conservatory', render: () => <ConservatoryPage /> },
];

function pageFor(path: string): PageDef | undefined {
  if (path === '/' || path === '') return PAGES[0];
  return PAGES.find((p) => p.path !== '/' && (path === p.path || path.startsWith(`${p.path}/`)));
}

const NEXT_THEME: Record<ThemeChoice, ThemeChoice> = {
  system: 'light',
  light: 'dark',
  dark: 'system',
};

function ThemeToggle() {
  const [choice, setChoice] = useState<ThemeChoice>(storedTheme);
  const effective = useEffectiveTheme();
  return (
    <button
      type="button"
      class="theme-toggle"
      title="Switch between the system's theme, light and dark"
      onClick={() => {
        const next = NEXT_THEME[choice];
        applyTheme(next);
        setChoice(next);
      }}
    >
      Theme: {choice === 'system' ? `system (${effective})` : choice}
    </button>
  );
}

function LiveIndicator() {
  const status = useLiveStatus();
  const text =
    status === 'open' ? 'Live' : status === 'connecting' ? 'Connecting…' : 'Reconnecting…';
  return (
    <span class={`live live-${status}`} role="status" title="Live updates from /api/live">
      <span class="live-dot" aria-hidden="true" />
      {text}
    </span>
  );
}

function Account({ session, onSignedOut }: { session: SessionState; onSignedOut: () => void }) {
  if (session.status !== 'signed-in' || session.auth !== 'required' || !session.principal)
    return null;
  const who = session.principal;
  return (
    <span class="account">
      <span>
        {who.name}
        {who.role ? <span class="muted"> ({who.role})</span> : null}
      </span>
      {who.kind === 'session' ? (
        <button type="button" onClick={() => void signOut().finally(onSignedOut)}>
          Sign out
        </button>
      ) : null}
    </span>
  );
}

export function App() {
  const route = useRoute();
  const [session, setSession, checkSession] = useSession();
  const signedIn = session.status === 'signed-in';
  const wasSignedIn = useRef(false);
  // A new session carries a new cookie: the live stream must be opened again with it.
  useEffect(() => {
    if (signedIn && wasSignedIn.current === false && session.auth === 'required') restartLive();
    wasSignedIn.current = signedIn;
  }, [signedIn]);
  const page = pageFor(route.path);
  const main = useRef<HTMLElement>(null);
  const firstRender = useRef(true);

  // After navigating, move focus to the page so keyboard and screen-reader users start there.
  useEffect(() => {
    document.title = page ? `${page.label} · Canopy` : 'Not found · Canopy';
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    main.current?.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }, [page]);

  return (
    <>
      <a
        class="skip-link"
        href="#main"
        onClick={(event) => {
          // Hash routing: following `#main` would leave the page, so move focus instead.
          event.preventDefault();
          main.current?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="site-header">
        <a class="brand" href="#/">
          Canopy
        </a>
        <nav aria-label="Dashboard pages">
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <a href={`#${p.path}`} aria-current={p === page ? 'page' : undefined}>
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="header-tools">
          {signedIn ? <LiveIndicator /> : null}
          <Account session={session} onSignedOut={() => setSession({ status: 'sign-in' })} />
          <ThemeToggle />
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <SessionGate state={session} setState={setSession} retry={checkSession}>
          {page ? page.render(route) : <NotFound path={route.path} />}
        </SessionGate>
      </main>
    </>
  );
}

function NotFound({ path }: { path: string }) {
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        There is no page at <code>{path}</code>. <a href="#/">Go to the overview</a>.
      </p>
    </section>
  );
}
