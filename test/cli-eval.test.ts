/**
 * `evaporate eval` as a user runs it, in a child process against the fake OpenAI server over real HTTP: two
 * sites whose pages sit in folders both called pages/, gold as JSON, progress, the table's name, the cost
 * ratio in --json, and --no-extract failing before it ingests anything.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/store/database.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';
import { bookPage, makeBooks, scriptModel, SOURCES, type Book } from './llm-path-harness.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function evaporate(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(root, 'bin', 'evaporate.js'), ...args], { cwd: root, env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let fake: FakeOpenAI;
let dir: string;
let sites: Record<string, Book[]>;

function writeSite(name: string, books: Book[]): void {
  const pages = path.join(dir, name, 'pages');
  fs.mkdirSync(pages, { recursive: true });
  const gold: Record<string, Record<string, string>> = {};
  books.forEach((b, i) => {
    const file = String(i).padStart(2, '0');
    fs.writeFileSync(path.join(pages, `${file}.htm`), bookPage(b));
    gold[file] = { price: b.price };
  });
  fs.writeFileSync(path.join(dir, name, 'gold.json'), JSON.stringify(gold));
}

beforeAll(async () => {
  fake = await startFakeOpenAI();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-cli-eval-'));
  // Same file names, different books: mixing the two sites in one corpus would score against the wrong pages.
  const books = makeBooks(24);
  sites = { 'shop-a': books.slice(0, 12), 'shop-b': books.slice(12) };
  for (const [name, list] of Object.entries(sites)) writeSite(name, list);
  scriptModel({ fake, books }, { functions: { price: SOURCES.price } });
});

afterAll(async () => {
  await fake?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const model = () => ({ OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'test', EVAPORATE_MODEL: 'fake-model', EVAPORATE_JOB_POLL_MS: '50' });

describe('evaporate eval', () => {
  it('names each corpus after its site, shows progress, names the table and reports the fewer-tokens ratio', async () => {
    const db = path.join(dir, 'e.db');
    const a = await evaporate(['--db', db, 'eval', '--corpus', path.join(dir, 'shop-a', 'pages'), '--gold', path.join(dir, 'shop-a', 'gold.json')], model());
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/^table corpus_shop_a_\d+ of corpus shop-a: 12 rows/m);
    expect(a.stdout).toMatch(/price\s.*1\.000/);
    expect(a.stderr).toMatch(/extraction job \d+ on corpus shop-a/);
    expect(a.stderr).toMatch(/\[[\u2588\u2591 ]+\] \d+\/\d+/); // the job's progress bar

    const b = await evaporate(['--db', db, 'eval', '--corpus', path.join(dir, 'shop-b', 'pages'), '--gold', path.join(dir, 'shop-b', 'gold.json'), '--json'], model());
    expect(b.code, b.stderr).toBe(0);
    const report = JSON.parse(b.stdout) as {
      corpus: string;
      table: string;
      attributes: { gold: string; f1: number }[];
      cost: { llm: { calls: number; requests: number; countedPromptTokens: number }; directExtractionPromptTokens: number; fewerTokens: number; attributesCompared: string[] };
    };
    expect(report.corpus).toBe('shop-b');
    expect(report.table).toMatch(/^corpus_shop_b_\d+$/);
    expect(report.attributes).toEqual([expect.objectContaining({ gold: 'price', f1: 1 })]);
    expect(report.cost.attributesCompared).toEqual(['price']);
    expect(report.cost.fewerTokens).toBeCloseTo(report.cost.directExtractionPromptTokens / report.cost.llm.countedPromptTokens, 6);
    expect(report.cost.llm.countedPromptTokens).toBeGreaterThan(0);
    // Two corpora, twelve documents each: the sites were not mixed.
    const store = openDatabase(db);
    try {
      expect(store.prepare('SELECT c.name, count(d.id) AS n FROM corpora c JOIN documents d ON d.corpus_id = c.id GROUP BY c.id ORDER BY c.name').all()).toEqual([
        { name: 'shop-a', n: 12 },
        { name: 'shop-b', n: 12 },
      ]);
    } finally {
      store.close();
    }
  });

  it('refuses --no-extract before ingesting anything when there is no table to score', async () => {
    const db = path.join(dir, 'fresh.db');
    const r = await evaporate(['--db', db, 'eval', '--corpus', path.join(dir, 'shop-a', 'pages'), '--gold', path.join(dir, 'shop-a', 'gold.json'), '--no-extract']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no result table yet.*\[nothing_to_score\]/s);
    const store = openDatabase(db);
    try {
      expect(store.prepare('SELECT count(*) FROM documents').pluck().get()).toBe(0);
      expect(store.prepare('SELECT count(*) FROM corpora').pluck().get()).toBe(0);
    } finally {
      store.close();
    }
  });
});
