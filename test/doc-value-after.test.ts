/**
 * doc.valueAfter(label): the value after a label in the same element or line, word-bounded, run in the real
 * sandbox on real SWDE pages (fixtures/swde): what an LLM-written function needs to read "the part of this
 * element after the label" without leaking the label or the next field into the value.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { createSandbox, type Sandbox, type SandboxDocument } from '../src/sandbox/index.js';
import { EXTRACTION_FUNCTION_CONTRACT } from '../src/sandbox/contract.js';
import { fixtureSite } from './swde-fixtures.js';

let sandbox: Sandbox;
beforeAll(() => {
  sandbox = createSandbox({ ...loadSettings().sandbox, workers: 1 });
});
afterAll(async () => {
  await sandbox.close();
});

const valueAfter = async (label: string, docs: SandboxDocument[]) => {
  const [row] = await sandbox.run([{ id: 'v', source: `function extract(text, doc) { return doc.valueAfter(${JSON.stringify(label)}); }` }], docs);
  return row.map((o) => (o.ok ? o.value : `error: ${o.ok ? '' : JSON.stringify(o)}`));
};

describe('doc.valueAfter', () => {
  it('reads the part of an element after its label, up to the next label (nbaplayer: "Height: 6\'10\' Weight: 278 DOB: ...")', async () => {
    const { pages, gold } = fixtureSite('nbaplayer-usatoday');
    const bare = (attribute: string) => pages.map((p) => gold.get(attribute)!.get(String(p.id))!.map((v) => v.replace(/^\w+: /, '')));
    expect(await valueAfter('Height', pages)).toEqual(bare('height'));
    expect(await valueAfter('Weight:', pages)).toEqual(bare('weight'));
    // Whole words only: "ight:" sits inside "Height:" and "Weight:", never on its own.
    expect(await valueAfter('ight:', pages)).toEqual(pages.map(() => null));
  });

  it('reads on after a label that stands alone in its element (nettemps: <b>Location:</b><br>San Francisco CA)', async () => {
    const { pages, gold } = fixtureSite('job-nettemps');
    expect(await valueAfter('Location', pages)).toEqual(pages.map((p) => gold.get('location')!.get(String(p.id))!));
    expect(await valueAfter('Date Posted', pages)).toEqual(pages.map((p) => gold.get('date_posted')!.get(String(p.id))!.map((v) => v.replace('Date Posted: ', ''))));
  });

  it('works on plain text line by line, and the contract the prompts embed describes it', async () => {
    const doc = { id: 't', text: 'The Great Gatsby (Paperback)\nby F. Scott Fitzgerald\nPublishers Weekly: starred' };
    expect(await valueAfter('by', [doc])).toEqual([['F. Scott Fitzgerald']]);
    expect(await valueAfter('Publisher', [doc])).toEqual([null]);
    expect(EXTRACTION_FUNCTION_CONTRACT).toContain('doc.valueAfter(label)');
  });
});
