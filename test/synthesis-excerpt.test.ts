/**
 * What the synthesis prompt shows, on real SWDE pages (fixtures/swde), sent over real HTTP to the fake
 * OpenAI-compatible server: the HTML around the value even when the markup writes it differently from the
 * text (Boston&nbsp;Celtics) or a <title> tag repeats it first, the same place in the readable text, and cuts
 * marked so no one reads them as part of a value.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { createLlm, llmConfigFromEnv } from '../src/llm/index.js';
import { ELISION, locateInHtml, textExcerpt } from '../src/pipeline/retrieval.js';
import { htmlExcerpt, synthesizeFunctions } from '../src/pipeline/synthesis.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';
import { fixtureSite } from './swde-fixtures.js';

let fake: FakeOpenAI;
let db: Db;
let dir: string;
beforeAll(async () => {
  fake = await startFakeOpenAI();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-excerpt-'));
  db = openDatabase(path.join(dir, 'e.db'));
});
afterAll(async () => {
  await fake.close();
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('synthesis excerpts', () => {
  it('finds a value through the visible text when the markup writes it with an entity (nbaplayer team)', () => {
    const page = fixtureSite('nbaplayer-usatoday').pages[0];
    const html = page.html!;
    expect(html).toContain('Boston&nbsp;Celtics');
    expect(html.indexOf('Boston Celtics')).toBe(-1);
    const at = locateInHtml(html, ['Boston Celtics']);
    expect(html.slice(at, at + 19)).toBe('Boston&nbsp;Celtics');
    const excerpt = htmlExcerpt(html, ['Boston Celtics'], 1200);
    expect(excerpt).toContain('>Boston&nbsp;Celtics</a>');
    expect(excerpt.startsWith('<!-- [excerpt: the page goes on before this] -->\n<')).toBe(true);
    expect(excerpt.endsWith('>\n<!-- [excerpt: the page goes on after this] -->')).toBe(true);
  });

  it('centres on the visible heading, not the <title> tag that names it first (gayot)', () => {
    const html = fixtureSite('restaurant-gayot').pages[0].html!;
    expect(html.indexOf('Einstein Bros Bagels')).toBeLessThan(html.indexOf('<h1>'));
    expect(htmlExcerpt(html, ['Einstein Bros Bagels'], 800)).toContain('<h1>Einstein Bros Bagels <span>Restaurant Review</span></h1>');
  });

  it('shows the readable text around the value with cuts on lines of their own', () => {
    const text = fixtureSite('nbaplayer-usatoday').pages[0].text;
    const excerpt = textExcerpt(text, ["6'10'"], 300);
    expect(excerpt).toContain("Height: 6'10' Weight: 278");
    expect(excerpt.startsWith(ELISION.trimStart())).toBe(true);
    for (const line of excerpt.split('\n')) if (line.includes('...')) expect(line).toBe(ELISION.trim());
  });

  it('sends both excerpts in the prompt a real endpoint receives', async () => {
    fake.reset().otherwise('```javascript\nfunction extract(text, doc) { return doc.valueAfter("Height"); }\n```');
    const settings = loadSettings({ databasePath: path.join(dir, 'e.db') });
    const llm = createLlm({ db, settings, config: llmConfigFromEnv({ OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'test', EVAPORATE_MODEL: 'fake-model' }) });
    const page = fixtureSite('nbaplayer-usatoday').pages[0];
    const candidates = await synthesizeFunctions(
      llm,
      { name: 'height' },
      [{ doc: { id: 1, text: page.text, html: page.html! } as never, value: ["6'10'"] }],
      { candidates: 1, documents: 1, temperatures: [0], contextTokens: 500 },
    );
    expect(candidates.length).toBe(1);
    const prompt = fake.chatRequests[0].prompt;
    expect(prompt).toContain('HTML excerpt of one document, around the value');
    expect(prompt).toContain("Height: 6'10'&nbsp;");
    expect(prompt).toContain("The same part of its readable text (what your function receives as `text`):");
    expect(prompt).toContain("Height: 6'10' Weight: 278 DOB: 11/10/1984");
    expect(prompt).toContain('doc.valueAfter(label)');
  });
});
