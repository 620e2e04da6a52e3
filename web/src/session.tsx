/**
 * Signing in, when Canopy requires it (`auth.mode: required`). At load the
 * app asks `GET /api/session`: 200 says who we are (or that auth is off),
 * 401 means "show the sign-in form". A 401 from any later request (a session
 * that ended) brings the form back; after signing in, the page reloads its
 * data with the new session cookie.
 */
import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import { ApiError, UNAUTHORIZED_EVENT, getJson, postJson, request } from './api.js';
import { ErrorState, Loading } from './components/states.js';

export interface Principal {
  kind: 'api-key' | 'session' | 'anonymous';
  name: string;
  role?: string;
  scopes: string[];
}

interface SessionAnswer {
  auth: 'off' | 'required';
  principal: Principal;
}

export type SessionState =
  | { status: 'checking' }
  | { status: 'signed-in'; auth: 'off' | 'required'; principal: Principal | null }
  | { status: 'sign-in' }
  | { status: 'failed'; error: ApiError };

const SessionContext = createContext<Principal | null>(null);

/** Who is signed in (null when authentication is off or unknown). */
export function usePrincipal(): Principal | null {
  return useContext(SessionContext);
}

export function useSession(): [SessionState, (s: SessionState) => void, () => void] {
  const [state, setState] = useState<SessionState>({ status: 'checking' });
  const check = (): void => {
    getJson<SessionAnswer>('/api/session').then(
      (answer) => setState({ status: 'signed-in', auth: answer.auth, principal: answer.principal }),
      (err: unknown) => {
        if (err instanceof ApiError && err.status === 401) setState({ status: 'sign-in' });
        // A Canopy without session routes has no authentication to pass.
        else if (err instanceof ApiError && err.status === 404)
          setState({ status: 'signed-in', auth: 'off', principal: null });
        else
          setState({
            status: 'failed',
            error: err instanceof ApiError ? err : new ApiError(0, 'CLIENT', String(err)),
          });
      },
    );
  };
  useEffect(() => {
    check();
    const onUnauthorized = (): void => setState({ status: 'sign-in' });
    window.addEventListener(UNAUTHORIZED_EVENT, onUnauthorized);
    return () => window.removeEventListener(UNAUTHORIZED_EVENT, onUnauthorized);
  }, []);
  return [state, setState, check];
}

export function SessionGate({
  state,
  setState,
  retry,
  children,
}: {
  state: SessionState;
  setState: (s: SessionState) => void;
  retry: () => void;
  children: ComponentChildren;
}) {
  if (state.status === 'checking') return <Loading what="your session" />;
  if (state.status === 'failed')
    return <ErrorState error={state.error} what="the session" onRetry={retry} />;
  if (state.status === 'sign-in')
    return (
      <SignIn
        onSignedIn={(answer) =>
          setState({ status: 'signed-in', auth: answer.auth, principal: answer.principal })
        }
      />
    );
  return (
    <SessionContext.Provider value={state.auth === 'required' ? state.principal : null}>
      {children}
    </SessionContext.Provider>
  );
}

function SignIn({ onSignedIn }: { onSignedIn: (answer: SessionAnswer) => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  return (
    <section aria-labelledby="sign-in-title" class="sign-in">
      <h1 id="sign-in-title">Sign in to Canopy</h1>
      <p>
        This Canopy requires signing in. An admin creates users with{' '}
        <code>canopy users add NAME --role viewer|operator|admin</code>.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          postJson<SessionAnswer>('/api/session', { username, password })
            .then(onSignedIn, (err: unknown) => {
              setError(err instanceof ApiError ? err : new ApiError(0, 'CLIENT', String(err)));
            })
            .finally(() => setBusy(false));
        }}
      >
        <label class="block-field">
          Username
          <input
            type="text"
            autocomplete="username"
            required
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
        </label>
        <label class="block-field">
          Password
          <input
            type="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      {error ? (
        <ErrorState
          error={
            error.status === 401
              ? new ApiError(401, error.code, 'The username or password was not accepted.')
              : error
          }
          what="a session"
        />
      ) : null}
    </section>
  );
}

/** Ends the session and shows the sign-in form. */
export async function signOut(): Promise<void> {
  await request('/api/session', { method: 'DELETE' });
}
