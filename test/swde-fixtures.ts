/** Small real SWDE sites under fixtures/swde (see the README there): pages as ingest reads them, gold as eval reads it. */
import fs from 'node:fs';
import path from 'node:path';
import { decodeHtml, parseHtml } from '../src/ingest/html.js';
import { readGold, type Gold } from '../src/pipeline/eval.js';
import type { SandboxDocument } from '../src/sandbox/index.js';

export const swdeFixtures = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'swde');

export function fixtureSite(site: string): { pages: SandboxDocument[]; gold: Gold } {
  const dir = path.join(swdeFixtures, site);
  const pages = fs
    .readdirSync(path.join(dir, 'pages'))
    .sort()
    .map((f) => {
      const bytes = fs.readFileSync(path.join(dir, 'pages', f));
      return { id: f.replace(/\.htm$/, ''), text: parseHtml(bytes).text, html: decodeHtml(bytes) };
    });
  return { pages, gold: readGold(path.join(dir, 'groundtruth')) };
}
