#!/usr/bin/env node
// The `evaporate` command: runs the compiled CLI in dist/ (`npm run build`; the published package ships it built).
// EVAPORATE_FROM_SOURCE=1 runs src/ through tsx instead: the tests set it, so they exercise the code as it is now,
// not the last build. A checkout that was never built does the same, and says so.
import fs from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
const source = new URL('../src/cli/main.ts', import.meta.url);
const fromSource = process.env.EVAPORATE_FROM_SOURCE === '1' || (!fs.existsSync(compiled) && fs.existsSync(source));

if (fromSource) {
  if (process.env.EVAPORATE_FROM_SOURCE !== '1') console.error('evaporate: dist/ is not built (npm run build); running src/ through tsx.');
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(compiled.href);
}
