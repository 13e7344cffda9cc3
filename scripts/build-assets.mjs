// Second half of `npm run build` (after tsc): the runtime files that are not TypeScript go beside the
// compiled code in dist/, and the DOM realm script is bundled once here so the installed package needs no esbuild.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const copy = (from, to) => fs.cpSync(path.join(root, from), path.join(root, to), { recursive: true });

if (!fs.existsSync(path.join(root, 'dist', 'sandbox', 'dom-bundle.js'))) {
  console.error('build-assets: dist/sandbox/dom-bundle.js is missing; run `npm run build:ts` first.');
  process.exit(1);
}
// Every plain-JavaScript module under src/ (worker entry points loaded by path: the sandbox's, the parse pool's)
// goes to the same place under dist/, so a new one cannot be forgotten here.
for (const entry of fs.readdirSync(path.join(root, 'src'), { recursive: true })) {
  if (String(entry).endsWith('.mjs')) copy(path.join('src', String(entry)), path.join('dist', String(entry)));
}
fs.rmSync(path.join(root, 'dist', 'sandbox', 'realm'), { recursive: true, force: true }); // no stale prebuilt bundle
copy('src/sandbox/realm', 'dist/sandbox/realm');

const { bundleDomRealm, PREBUILT_DOM_REALM } = await import('../dist/sandbox/dom-bundle.js');
fs.writeFileSync(PREBUILT_DOM_REALM, bundleDomRealm());
const { bundleProcessHost, PREBUILT_PROCESS_HOST } = await import('../dist/sandbox/process-sandbox.js');
fs.writeFileSync(PREBUILT_PROCESS_HOST, bundleProcessHost());
console.log(`build-assets: worker entries, ${path.relative(root, PREBUILT_DOM_REALM)} and ${path.relative(root, PREBUILT_PROCESS_HOST)} in dist/`);
