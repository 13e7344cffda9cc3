/**
 * A value that is only part of an element's text: on real SWDE restaurant pages (fixtures/swde/restaurant-gayot)
 * the name sits in <h1>Einstein Bros Bagels <span>Restaurant Review</span></h1>; no element's whole text and no
 * text line equals it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { parseHtml } from '../src/ingest/html.js';
import { induceCandidates } from '../src/pipeline/induction/index.js';
import { createSandbox, type Sandbox, type SandboxDocument } from '../src/sandbox/index.js';
import { fixtureSite } from './swde-fixtures.js';

let sandbox: Sandbox;
beforeAll(() => {
  sandbox = createSandbox({ ...loadSettings().sandbox, workers: 1 });
});
afterAll(async () => {
  await sandbox.close();
});

const run = async (source: string, docs: SandboxDocument[]) => (await sandbox.run([{ id: 'f', source }], docs))[0].map((o) => (o.ok ? o.value : null));

describe('partial-text values', () => {
  const { pages, gold } = fixtureSite('restaurant-gayot');
  const names = pages.map((p) => gold.get('name')!.get(String(p.id))!);

  it('learns "the h1 without its child elements" from two pages and reads the third, accents and all', async () => {
    expect(pages[0].html).toContain('<h1>Einstein Bros Bagels <span>Restaurant Review</span></h1>');
    const { candidates } = induceCandidates('name', pages.slice(0, 2).map((p, i) => ({ document: p, values: names[i] })), { maxCandidates: 10 });
    const own = candidates.find((c) => c.description.includes('"h1", without the text of its child elements'));
    expect(own, candidates.map((c) => c.description).join('\n')).toBeDefined();
    expect(await run(own!.source, pages)).toEqual([['Einstein Bros Bagels'], ['The Melting Pot'], ['Orchard Market & Café']]);
  });

  it('the partial-text rule wins when the page offers no other place for the value', async () => {
    // The same real pages without the one text line that repeats the name ("User Ratings & Reviews for ...").
    const bare = pages.map((p) => {
      const html = p.html!.replace(/<b>User Ratings & Reviews for [^<]*<\/b>/, '<b>User Ratings</b>');
      return { ...p, html, text: parseHtml(Buffer.from(html, 'latin1')).text };
    });
    expect(bare[0].text).not.toContain('Reviews for');
    const { candidates } = induceCandidates('name', bare.slice(0, 2).map((p, i) => ({ document: p, values: names[i] })));
    expect(candidates[0].generator).toBe('dom-path');
    expect(await run(candidates[0].source, bare)).toEqual(names);
  });
});
