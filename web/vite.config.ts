/**
 * The dashboard's build (`npm run build:web` → web/dist, served by the API at /)
 * and its dev server (`npx vite web`), which proxies /api to a running Canopy
 * (CANOPY_URL, default http://127.0.0.1:3000) so the app talks to real data.
 */
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

// Only this file runs in Node; the app's tsconfig has no Node types.
declare const process: { env: Record<string, string | undefined> };

const canopyUrl = process.env.CANOPY_URL ?? 'http://127.0.0.1:3000';

export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The server caches /assets/* for a year: file names carry content hashes.
    assetsDir: 'assets',
    target: 'es2022',
  },
  server: {
    proxy: {
      '/api': { target: canopyUrl, changeOrigin: true },
      '/healthz': canopyUrl,
      '/readyz': canopyUrl,
    },
  },
});
