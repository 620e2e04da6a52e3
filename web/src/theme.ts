/**
 * Light and dark themes: the system's choice (prefers-color-scheme) unless
 * the user picked one with the header's toggle, remembered in localStorage.
 * Charts draw on canvas, so they read the theme's colours from CSS variables
 * and redraw when the effective theme changes.
 */
import { useEffect, useState } from 'preact/hooks';

export type ThemeChoice = 'system' | 'light' | 'dark';
const STORAGE_KEY = 'canopy-theme';
const CHANGE_EVENT = 'canopy-theme-change';
const darkQuery = window.matchMedia('(prefers-color-scheme: dark)');

export function storedTheme(): ThemeChoice {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return value === 'light' || value === 'dark' ? value : 'system';
  } catch {
    return 'system'; // storage can be disabled; the system's choice still works
  }
}

export function applyTheme(choice: ThemeChoice): void {
  if (choice === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = choice;
  try {
    if (choice === 'system') localStorage.removeItem(STORAGE_KEY);
    else localStorage.setItem(STORAGE_KEY, choice);
  } catch {
    // not remembered across visits, but applied now
  }
  window.dispatchEvent(new Event(CHANGE_EVENT));
}

export function effectiveTheme(): 'light' | 'dark' {
  const forced = document.documentElement.dataset.theme;
  if (forced === 'light' || forced === 'dark') return forced;
  return darkQuery.matches ? 'dark' : 'light';
}

/** The effective theme, updated when the toggle or the system setting changes. */
export function useEffectiveTheme(): 'light' | 'dark' {
  const [theme, setTheme] = useState(effectiveTheme);
  useEffect(() => {
    const update = (): void => setTheme(effectiveTheme());
    window.addEventListener(CHANGE_EVENT, update);
    darkQuery.addEventListener('change', update);
    return () => {
      window.removeEventListener(CHANGE_EVENT, update);
      darkQuery.removeEventListener('change', update);
    };
  }, []);
  return theme;
}

/** A CSS custom property of the document, e.g. `--text`. */
export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** Series colours, distinguishable in both themes. */
export const PALETTE = [
  '#2f8f5b',
  '#3b73d9',
  '#d9822b',
  '#a04fc4',
  '#c23b52',
  '#1f9fb0',
  '#8a7a1c',
  '#6b6bd6',
  '#d94fa0',
  '#4f9a2f',
];

export const IMPUTED_COLOR = '#e0a100';
