/**
 * Failure classes of wrapper induction on small real SWDE pages (fixtures/swde): labels that carry the page's
 * label text or punctuation must still teach rules that return the bare value.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { induceCandidates, type LabelledExample } from '../src/pipeline/induction/index.js';
import { cleanLabels } from '../src/pipeline/induction/labels.js';
import { createSandbox, type Sandbox, type SandboxDocument } from '../src/sandbox/index.js';
import { fixtureSite } from './swde-fixtures.js';

let sandbox: Sandbox;
beforeAll(() => {
  sandbox = createSandbox({ ...loadSettings().sandbox, workers: 1 });
});
afterAll(async () => {
  await sandbox.close();
});

async function runTop(attribute: string, train: LabelledExample[], unseen: SandboxDocument[]): Promise<(string[] | null)[]> {
  const { candidates } = induceCandidates(attribute, train, { maxCandidates: 1 });
  expect(candidates.length, `a rule for ${attribute}`).toBe(1);
  const [row] = await sandbox.run([{ id: 'top', source: candidates[0].source }], unseen);
  return row.map((o) => (o.ok ? o.value : null));
}

describe('labels with the page label inside the value (SWDE nbaplayer "Height: 6\'10\'")', () => {
  it('learns a rule that returns the bare value on a page it did not see', async () => {
    const { pages, gold } = fixtureSite('nbaplayer-usatoday');
    for (const attribute of ['height', 'weight']) {
      const train = pages.slice(0, 3).map((p) => ({ document: p, values: gold.get(attribute)!.get(String(p.id))! }));
      expect(train[0].values[0]).toMatch(/^(Height|Weight): /);
      const [out] = await runTop(attribute, train, [pages[3]]);
      const expected = gold.get(attribute)!.get('0003')![0].replace(/^\w+: /, '');
      expect(out, attribute).toEqual([expected]);
    }
  });

  it('reads off a label every labelled value opens with, even one that does not name the attribute', () => {
    expect(cleanLabels('tallness', [["Ht: 6'10'"], ["Ht: 7'0'"]])).toEqual([["6'10'"], ["7'0'"]]);
    // One value alone is no evidence that "Mission:" is a label.
    expect(cleanLabels('title', [['Mission: Impossible'], ['Heat']])).toEqual([['Mission: Impossible'], ['Heat']]);
  });
});

describe('label punctuation (SWDE gayot phone "410-821-6358 |", a person typing ": ..." or not)', () => {
  it('returns the value without the punctuation, whether the labels carry it or not', async () => {
    const { pages, gold } = fixtureSite('restaurant-gayot');
    const labels = ['0000', '0001'].map((id) => gold.get('phone')!.get(id)!);
    expect(labels[1][0]).toBe('410-821-6358 |');
    for (const variant of [labels, labels.map((v) => [`: ${v[0].replace(/ \|$/, '')}`]), labels.map((v) => [v[0].replace(/ \|$/, '')])]) {
      const train = pages.slice(0, 2).map((p, i) => ({ document: p, values: variant[i] }));
      const out = await runTop('phone', train, pages);
      expect(out).toEqual([['410-825-0420'], ['410-821-6358'], ['410-339-7700']]);
    }
  });
});
