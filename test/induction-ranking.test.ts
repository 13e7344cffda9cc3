/**
 * Ranking and selection on real SWDE pages (fixtures/swde): rules that return the same values on every document
 * seen are one candidate, whatever generator wrote them, so near-copies cannot outvote one right rule.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { induceCandidates } from '../src/pipeline/induction/index.js';
import { inducedForPipeline } from '../src/pipeline/induction/candidates.js';
import { createSandbox, type Sandbox } from '../src/sandbox/index.js';
import { fixtureSite } from './swde-fixtures.js';

let sandbox: Sandbox;
beforeAll(() => {
  sandbox = createSandbox({ ...loadSettings().sandbox, workers: 1 });
});
afterAll(async () => {
  await sandbox.close();
});

describe('near-copies are one vote', () => {
  it('keeps one rule per behaviour on the labelled and unlabelled pages, across generators', async () => {
    const { pages, gold } = fixtureSite('nbaplayer-usatoday');
    const behavioursOf = async (sources: string[]) =>
      (await sandbox.run(sources.map((source, i) => ({ id: `c${i}`, source })), pages)).map((row) => JSON.stringify(row.map((o) => (o.ok ? o.value : null))));
    let copiesWithoutUnlabelled = 0;
    for (const attribute of ['height', 'team', 'name']) {
      const examples = pages.slice(0, 2).map((p) => ({ document: p, values: gold.get(attribute)!.get(String(p.id))! }));
      const unlabelled = pages.slice(2);
      const loose = induceCandidates(attribute, examples, { maxCandidates: 50, minScore: 0 });
      const strict = induceCandidates(attribute, examples, { maxCandidates: 50, minScore: 0, unlabelled });
      expect(strict.candidates.length, attribute).toBeGreaterThan(0);
      const looseBehaviours = await behavioursOf(loose.candidates.map((c) => c.source));
      copiesWithoutUnlabelled += looseBehaviours.length - new Set(looseBehaviours).size;
      const behaviours = await behavioursOf(strict.candidates.map((c) => c.source));
      expect(new Set(behaviours).size, attribute).toBe(behaviours.length);
      // The best rule is still first.
      expect(JSON.parse(behaviours[0])).toEqual(pages.map((p) => gold.get(attribute)!.get(String(p.id))!.map((v) => v.replace(/^\w+: /, ''))));
    }
    // What the unlabelled pages are for: on the labels alone, rules of different kinds that act alike everywhere survive.
    expect(copiesWithoutUnlabelled).toBeGreaterThan(0);
  });

  it('the pipeline seam passes the unlabelled sample, so its candidates are distinct there too', async () => {
    const { pages, gold } = fixtureSite('nbaplayer-usatoday');
    const sample = pages.map((p, i) => ({ id: i + 1, text: p.text, html: p.html!, filename: `${p.id}.htm` }));
    const given = sample.slice(0, 2).map((d, i) => ({ document: { id: d.id, text: d.text, html: d.html }, values: gold.get('height')!.get(String(pages[i].id))! }));
    const candidates = inducedForPipeline(
      { attribute: { name: 'height' }, sample: sample as never, silver: {}, given },
      { maxCandidates: 50, minScore: 0 },
    );
    const outcomes = await sandbox.run(candidates.map((c) => ({ id: c.id, source: c.source })), sample.map((d) => ({ id: d.id, text: d.text, html: d.html })));
    const behaviours = outcomes.map((row) => JSON.stringify(row.map((o) => (o.ok ? o.value : null))));
    expect(new Set(behaviours).size).toBe(behaviours.length);
  });
});

describe('anchors that are page content, not labels', () => {
  it('a one-letter position shared by the labelled players does not beat the structural rule (nbaplayer team)', async () => {
    const { pages, gold } = fixtureSite('nbaplayer-usatoday');
    // Both labelled players are centres: "Kendrick Perkins C Boston Celtics", "Semih Erden C Boston Celtics".
    expect(pages[0].text).toContain('Kendrick Perkins C Boston Celtics');
    expect(pages[2].text).toContain('Semih Erden C Boston Celtics');
    const examples = [pages[0], pages[2]].map((p) => ({ document: p, values: gold.get('team')!.get(String(p.id))! }));
    const { candidates } = induceCandidates('team', examples, { maxCandidates: 5 });
    const anchored = candidates.findIndex((c) => c.description.includes('after "C"'));
    expect(anchored).toBeGreaterThan(0);
    expect(candidates[0].generator).toBe('dom-path');
    const [row] = await sandbox.run([{ id: 'top', source: candidates[0].source }], pages);
    expect(row.map((o) => o.ok && o.value)).toEqual(pages.map(() => ['Boston Celtics']));
  });
});
