// The console's build: Preact through Vite's own JSX transform (no Babel preset), everything bundled (no CDN),
// output to web/dist, which src/server/routes/console.ts serves at `/`.
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 1500, reportCompressedSize: false },
});
