/** Loading, empty and error states that say what is happening and what to do. */
import type { ComponentChildren } from 'preact';
import type { ApiError } from '../api.js';

export function Loading({ what }: { what: string }) {
  return (
    <p class="state state-loading" role="status">
      Loading {what}…
    </p>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="state state-empty" role="status">
      <p class="state-title">{title}</p>
      {children ? <p>{children}</p> : null}
    </div>
  );
}

export function ErrorState({
  error,
  what,
  onRetry,
}: {
  error: ApiError;
  what: string;
  onRetry?: () => void;
}) {
  return (
    <div class="state state-error" role="alert">
      <p class="state-title">Could not load {what}.</p>
      <p>
        {error.message}
        {error.code && !error.code.startsWith('HTTP_') && error.code !== 'NETWORK' ? (
          <>
            {' '}
            <code>{error.code}</code>
          </>
        ) : null}
      </p>
      {error.hint ? <p>{error.hint}</p> : null}
      {onRetry ? (
        <button type="button" onClick={onRetry}>
          Retry
        </button>
      ) : null}
    </div>
  );
}

/** Shows `children(data)` once loaded, else the loading or error state; keeps stale data on refresh errors. */
export function Loaded<T>({
  resource,
  what,
  children,
}: {
  resource: { data: T | undefined; error: ApiError | undefined; reload: () => void };
  what: string;
  children: (data: T) => ComponentChildren;
}) {
  if (resource.data !== undefined)
    return (
      <>
        {resource.error ? (
          <ErrorState error={resource.error} what={what} onRetry={resource.reload} />
        ) : null}
        {children(resource.data)}
      </>
    );
  if (resource.error)
    return <ErrorState error={resource.error} what={what} onRetry={resource.reload} />;
  return <Loading what={what} />;
}

/** A table that scrolls sideways on narrow screens instead of overflowing the page. */
export function TableWrap({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}
