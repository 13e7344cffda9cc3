/**
 * Anchors and delimiters match whole words: on real SWDE job pages (fixtures/swde/job-nettemps) a rule learned
 * from "Date Posted: 05/20/2011" must not read "RePosted:" as its anchor, and a learned "by" must not match
 * inside "Gatsby".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { parseHtml } from '../src/ingest/html.js';
import { induceCandidates } from '../src/pipeline/induction/index.js';
import { prepareDocument } from '../src/pipeline/induction/prepare.js';
import { TextAnchorRule } from '../src/pipeline/induction/text-anchors.js';
import { emitSource } from '../src/pipeline/induction/emit.js';
import { createSandbox, type Sandbox } from '../src/sandbox/index.js';
import { fixtureSite } from './swde-fixtures.js';

let sandbox: Sandbox;
beforeAll(() => {
  sandbox = createSandbox({ ...loadSettings().sandbox, workers: 1 });
});
afterAll(async () => {
  await sandbox.close();
});

describe('word-bounded anchors', () => {
  it('a rule learned on real job pages skips an anchor that sits inside a longer word', async () => {
    const { pages, gold } = fixtureSite('job-nettemps');
    const train = pages.slice(0, 3).map((p) => ({ document: p, values: gold.get('date_posted')!.get(String(p.id))! }));
    const { candidates } = induceCandidates('date_posted', train, { maxCandidates: 5 });
    expect(candidates.length).toBeGreaterThan(0);
    // The same real page with a line above the posting date whose label ends in the learned anchor.
    const html = pages[3].html!.replace('<body bgcolor=#FFFFFF link=#0000FF vlink=#0000FF>', '$&<p>RePosted: 01/01/2001</p>');
    const tricky = { id: 'tricky', html, text: parseHtml(Buffer.from(html, 'latin1')).text };
    expect(tricky.text).toContain('RePosted: 01/01/2001');
    const outcomes = await sandbox.run(candidates.map((c, i) => ({ id: `c${i}`, source: c.source })), [tricky]);
    for (const [i, row] of outcomes.entries()) expect(row[0].ok && row[0].value, candidates[i].description).toEqual(['05/18/2011']);
  });

  it('"by" and "Publisher" match as words only, in process and in the emitted source', async () => {
    const text = 'The Great Gatsby (Paperback)\nPublishers Weekly review\nby F. Scott Fitzgerald\nPublisher: Scribner';
    const doc = { id: 'g', text };
    const by = new TextAnchorRule({ mode: 'same-line', anchor: 'by', atLineStart: false, stop: null, pick: 'first', split: null });
    const pub = new TextAnchorRule({ mode: 'same-line', anchor: 'Publisher', atLineStart: false, stop: null, pick: 'first', split: null });
    expect(by.apply(prepareDocument(doc))).toEqual(['F. Scott Fitzgerald']);
    expect(pub.apply(prepareDocument(doc))).toEqual([': Scribner']);
    const outcomes = await sandbox.run([by, pub].map((r, i) => ({ id: `r${i}`, source: emitSource(r, 'test') })), [doc]);
    expect(outcomes.map((row) => row[0].ok && row[0].value)).toEqual([['F. Scott Fitzgerald'], ['Scribner']]);
  });
});
