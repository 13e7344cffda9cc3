/**
 * Builds the script that runs inside each worker's DOM realm: our facade code plus htmlparser2 and css-select,
 * as one self-contained strict script (a vm context cannot import modules).
 */
import { buildSync } from 'esbuild';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function domRealmSource(): string {
  if (cached === undefined) {
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
    cached = result.outputFiles[0].text;
  }
  return cached;
}
