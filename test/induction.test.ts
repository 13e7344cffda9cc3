import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { induceCandidates, type LabelledExample } from '../src/pipeline/induction/index.js';
import { createSandbox, type Sandbox, type SandboxDocument } from '../src/sandbox/index.js';
import { textF1 } from '../src/weak-supervision/normalize.js';
import { loadSwde, runInSandbox, seededSample, type Page } from '../bench/induction.bench.js';
import { swdeDir } from './pipeline-script.js';

let sandbox: Sandbox;
beforeAll(() => {
  sandbox = createSandbox({ ...loadSettings().sandbox, workers: 1 });
});
afterAll(async () => {
  await sandbox.close();
});

const doc = (id: string, html: string, text?: string): SandboxDocument => ({ id, html, text: text ?? html.replace(/<br>|<\/(?:tr|p|div|h1)>/g, '\n').replace(/<\/td>/g, ' | ').replace(/<[^>]+>/g, '').replace(/ \| \n/g, '\n') });

describe('wrapper induction on SWDE christianbook (10 gold labels, no LLM)', () => {
  let train: Page[];
  let test: Page[];
  let gold: Record<string, Map<string, string[]>>;
  beforeAll(() => {
    const data = loadSwde(swdeDir);
    gold = data.gold;
    const sample = new Set(seededSample(data.pages.map((p) => p.id), 10, 0));
    train = data.pages.filter((p) => sample.has(p.id));
    test = data.pages.filter((p) => !sample.has(p.id));
  });

  const examples = (attribute: string): LabelledExample[] =>
    train.map((p) => ({ document: { id: p.id, text: p.text, html: p.html }, values: gold[attribute].get(p.id) ?? [] }));

  it.each([
    ['isbn_13', 0.8],
    ['publisher', 0.8],
    ['author', 0.8],
  ])('the top %s function reaches F1 >= %s on the 30 held-out fixture pages, run in the sandbox', async (attribute, floor) => {
    const { candidates } = induceCandidates(attribute, examples(attribute));
    expect(candidates.length).toBeGreaterThan(0);
    expect(candidates.every((c) => c.origin === 'induction' && /function extract\(text, doc\)/.test(c.source))).toBe(true);
    const [outputs] = await runInSandbox(sandbox, [candidates[0].source], test);
    const f1 = test.reduce((s, p, d) => s + textF1(outputs[d], gold[attribute].get(p.id) ?? []), 0) / test.length;
    expect(f1).toBeGreaterThanOrEqual(floor);
  });

  it('scores candidates in-process exactly as the sandbox runs their emitted source', async () => {
    for (const attribute of ['title', 'author', 'publication_date']) {
      const ex = examples(attribute);
      const { candidates } = induceCandidates(attribute, ex, { maxCandidates: 20, minScore: 0 });
      const outputs = await runInSandbox(sandbox, candidates.map((c) => c.source), ex.map((e) => e.document));
      candidates.forEach((c, k) => {
        const fit = ex.reduce((s, e, d) => s + textF1(outputs[k][d], e.values), 0) / ex.length;
        expect(fit, `${attribute}: ${c.description}`).toBeCloseTo(c.fitScore, 9);
      });
    }
  });
});

describe('wrapper induction generators', () => {
  const table = (publisher: string, price: string, extra = '') =>
    `<html><body><h1>Catalog</h1>${extra}<table><tr><td>Price</td><td>${price}</td></tr><tr><td>Publisher</td><td>${publisher}</td></tr></table></body></html>`;

  it('learns "the cell after the cell that says Publisher" and a price shape from a few pages', async () => {
    const labelled = [
      { document: doc('a', table('Zondervan', '$12.99')), publisher: 'Zondervan', price: '$12.99' },
      { document: doc('b', table('Baker Books', '$7.50', '<p>Publisher news</p>')), publisher: 'Baker Books', price: '$7.50' },
      { document: doc('c', table('Tyndale House', '$120.00')), publisher: 'Tyndale House', price: '$120.00' },
    ];
    const pub = induceCandidates('publisher', labelled.map((l) => ({ document: l.document, values: [l.publisher] })));
    expect(pub.candidates[0].looScore).toBe(1);
    expect(pub.candidates.some((c) => c.generator === 'label-anchor' && c.source.includes('doc.textAfter("Publisher")'))).toBe(true);
    const unseen = doc('d', table('Revell', '$3.00', '<div>Publisher of the week: Nobody</div>'));
    const [out] = await runInSandbox(sandbox, [pub.candidates[0].source], [unseen]);
    expect(out[0]).toEqual(['Revell']);

    const price = induceCandidates('price', labelled.map((l) => ({ document: l.document, values: [l.price] })), { maxCandidates: 20 });
    const shape = price.candidates.find((c) => c.generator === 'value-shape');
    expect(shape?.description).toMatch(/price/);
    const [priceOut] = await runInSandbox(sandbox, [shape!.source], [unseen]);
    expect(priceOut[0]).toEqual(['$3.00']);
  });

  it('splits several values on the separator the labels show', async () => {
    const page = (names: string[]) => doc('x', `<div class="info"><h1>A Book</h1><div>Authors: ${names.join(', ')}</div></div>`);
    const ex: LabelledExample[] = [
      { document: page(['Ann Lee', 'Bo Chan']), values: ['Ann Lee', 'Bo Chan'] },
      { document: page(['Cy Dee']), values: ['Cy Dee'] },
      { document: page(['Di Eve', 'Ed Fox', 'Flo Gu']), values: ['Di Eve', 'Ed Fox', 'Flo Gu'] },
    ];
    const { candidates } = induceCandidates('author', ex, { maxCandidates: 20 });
    const split = candidates.find((c) => c.source.includes('value.split(/'));
    expect(split).toBeDefined();
    const [out] = await runInSandbox(sandbox, [split!.source], [page(['Gil Ho', 'Ida Jo'])]);
    expect(out[0]).toEqual(['Gil Ho', 'Ida Jo']);
  });

  it('gives no leave-one-out credit to a rule only the page itself proposes', () => {
    // Each value sits after a different, page-specific word; only the shared "Code:" anchor generalizes.
    const ex: LabelledExample[] = ['alpha', 'beta', 'gamma'].map((w, i) => ({
      document: doc(w, `<div>${w} Code: K-${i}${i}${i}</div>`),
      values: [`K-${i}${i}${i}`],
    }));
    const { candidates } = induceCandidates('code', ex, { maxCandidates: 50, minScore: 0 });
    expect(candidates[0].looScore).toBe(1);
    expect(candidates.find((c) => c.source.includes('"alpha Code:"'))?.looScore ?? 0).toBeLessThan(1);
  });

  it('emits page text only as escaped literals, so a hostile label stays data', async () => {
    const evil = 'x*/ }); throw 1; ("';
    const ex: LabelledExample[] = [0, 1, 2].map((i) => ({ document: doc(String(i), `<p>${evil} ${i}: V${i}</p>`), values: [`V${i}`] }));
    const { candidates } = induceCandidates('v', ex, { maxCandidates: 50, minScore: 0 });
    expect(candidates.length).toBeGreaterThan(0);
    const outputs = await runInSandbox(sandbox, candidates.map((c) => c.source), ex.map((e) => e.document));
    const outcomes = await sandbox.run(candidates.map((c, i) => ({ id: `c${i}`, source: c.source })), ex.map((e) => e.document));
    expect(outcomes.flat().every((o) => o.ok)).toBe(true);
    expect(outputs[0]).toEqual([['V0'], ['V1'], ['V2']]);
  });

  it('refuses to learn from fewer than two labelled documents', () => {
    expect(() => induceCandidates('v', [{ document: doc('a', '<p>x</p>'), values: ['x'] }])).toThrow(/at least 2/);
  });
});
