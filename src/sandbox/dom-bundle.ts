/**
 * Builds the script that runs inside each worker's DOM realm: our facade code plus htmlparser2 and css-select,
 * as one self-contained strict script (a vm context cannot import modules).
 * The compiled package ships it prebuilt (realm/dom-realm.js, written by `npm run build`), so an installed
 * evaporate needs no bundler at run time; a checkout running src/ bundles it on first use with esbuild.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const PREBUILT_DOM_REALM = fileURLToPath(new URL('./realm/dom-realm.js', import.meta.url));

let cached: string | undefined;

export function domRealmSource(): string {
  if (cached === undefined) cached = fs.existsSync(PREBUILT_DOM_REALM) ? fs.readFileSync(PREBUILT_DOM_REALM, 'utf8') : bundleDomRealm();
  return cached;
}

/** Bundles realm/dom-entry.mjs with esbuild (a development dependency: only a checkout or the build needs it). */
export function bundleDomRealm(): string {
  const { buildSync } = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  const result = buildSync({
    entryPoints: [fileURLToPath(new URL('./realm/dom-entry.mjs', import.meta.url))],
    bundle: true,
    format: 'iife',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2022',
    write: false,
    minify: false,
    legalComments: 'none',
    banner: { js: '"use strict";' },
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}
