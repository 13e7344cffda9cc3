import { defineConfig } from 'vitest/config';

// Two cores on the dev and CI machines: forks keep native addons (better-sqlite3, piscina workers) isolated per file.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Child processes that run bin/evaporate.js run src/ through tsx, not a possibly stale dist/ build.
    env: { EVAPORATE_FROM_SOURCE: '1' },
  },
});
