/**
 * A closed extraction with no model endpoint at all: a few labelled SWDE pages, wrapper induction, the real
 * sandbox and label model, and a table for the whole corpus. Also: an extraction that would need a model fails
 * before doing anything, and documents that arrive while a job is under way are left whole for the next run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { chunkText } from '../src/ingest/chunk.js';
import { parseHtml } from '../src/ingest/html.js';
import { createLlm, llmConfigFromEnv } from '../src/llm/index.js';
import { inductionHook } from '../src/pipeline/induction/candidates.js';
import { memoryJobContext, runExtraction, type ExtractDeps, type ExtractParams } from '../src/pipeline/extract-job.js';
import { createSandbox } from '../src/sandbox/index.js';
import type { Sandbox } from '../src/sandbox/types.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { insertDocument } from '../src/store/documents.js';
import { setLabels } from '../src/store/labels.js';
import { labelModel } from '../src/weak-supervision/index.js';
import { textF1 } from '../src/weak-supervision/normalize.js';
import { swdeDir, swdeGold } from './pipeline-script.js';

const PAGES = 39; // the 40th fixture page arrives later, for the nightly run
const LABELLED = ['0003', '0011', '0019', '0027', '0035'];
const page = (i: number) => String(i).padStart(4, '0');

let dir: string;
let db: Db;
let sandbox: Sandbox;
let deps: ExtractDeps;
let corpusId: number;

function addPage(i: number): number {
  const raw = fs.readFileSync(path.join(swdeDir, 'pages', `${page(i)}.htm`));
  const parsed = parseHtml(raw);
  return insertDocument(db, {
    corpusId, filename: `${page(i)}.htm`, contentHash: createHash('sha256').update(raw).digest('hex'), kind: 'html', raw,
    text: parsed.text, structure: { title: parsed.title }, chunks: chunkText(parsed.text, 3000),
  });
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-labels-only-'));
  const file = path.join(dir, 'e.db');
  db = openDatabase(file);
  corpusId = Number(db.prepare("INSERT INTO corpora (name) VALUES ('books')").run().lastInsertRowid);
  for (let i = 0; i < PAGES; i++) addPage(i);
  setLabels(db, corpusId, LABELLED.flatMap((p) => ['isbn_13', 'publisher'].map((a) => ({ document: `${p}.htm`, attribute: a, values: swdeGold.get(a)!.get(p)! }))));
  const settings = loadSettings({ databasePath: file });
  settings.sandbox = { ...settings.sandbox, workers: 2 };
  sandbox = createSandbox(settings.sandbox);
  // no endpoint, no model: every role is unconfigured
  const llm = createLlm({ db, settings, config: llmConfigFromEnv({}) });
  deps = { db, llm, sandbox, labelModel: labelModel('one-coin'), settings, extraCandidates: inductionHook(db, settings) };
});

afterAll(async () => {
  await sandbox?.close();
  db?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const closed = (attributes: string[]): ExtractParams => ({ corpusId, mode: 'closed', attributes: attributes.map((name) => ({ name })) });
const llmCalls = () => (db.prepare('SELECT count(*) AS n FROM llm_calls').get() as { n: number }).n;

describe('closed extraction from labels alone', () => {
  it('builds the table for the whole corpus with no model and no LLM call', async () => {
    const result = await runExtraction(deps, closed(['isbn_13', 'publisher']), memoryJobContext());
    expect(result.llm.calls).toBe(0);
    expect(llmCalls()).toBe(0);
    expect(result.rows).toBe(PAGES);
    const rows = db.prepare(`SELECT d.filename, t.isbn_13, t.publisher FROM "${result.table}" t JOIN documents d ON d.id = t._document_id`).all() as {
      filename: string;
      isbn_13: string | null;
      publisher: string | null;
    }[];
    for (const attribute of ['isbn_13', 'publisher'] as const) {
      const unseen = rows.filter((r) => !LABELLED.includes(r.filename.slice(0, 4)));
      const f1 = unseen.reduce((sum, r) => sum + textF1(r[attribute] === null ? [] : [String(r[attribute])], swdeGold.get(attribute)!.get(r.filename.slice(0, 4))!), 0) / unseen.length;
      expect(f1, attribute).toBeGreaterThan(0.95);
    }
  });

  it('fails at once, naming the variables to set, when an attribute has no labels and no model is configured', async () => {
    const ctx = memoryJobContext();
    await expect(runExtraction(deps, closed(['isbn_13', 'title']), ctx)).rejects.toMatchObject({
      code: 'llm_not_configured',
      message: expect.stringMatching(/EVAPORATE_MODEL_SYNTHESIS or EVAPORATE_MODEL.*label at least two documents/),
    });
    expect(ctx.memo.size).toBe(0);
    await expect(runExtraction(deps, { corpusId, mode: 'open' }, memoryJobContext())).rejects.toMatchObject({ code: 'llm_not_configured' });
  });

  it('leaves a document that arrives between a crash and the resume for the next run', async () => {
    const ctx = memoryJobContext();
    const first = await runExtraction(deps, closed(['isbn_13']), ctx);
    // as if the process died after scoring: the corpus pass and materialization were never committed
    for (const key of [...ctx.memo.keys()]) if (key.startsWith('batch:') || key === 'materialize') ctx.memo.delete(key);
    db.prepare(`DELETE FROM "${first.table}"`).run();
    const late = addPage(PAGES);
    const resumed = await runExtraction(deps, closed(['isbn_13']), ctx);
    expect(resumed.rows).toBe(PAGES);
    expect(db.prepare(`SELECT count(*) AS n FROM "${resumed.table}" WHERE _document_id = ?`).get(late)).toEqual({ n: 0 });
    // the next run takes it
    const next = await runExtraction(deps, closed(['isbn_13']), memoryJobContext());
    expect(next.rows).toBe(PAGES + 1);
    expect(db.prepare(`SELECT isbn_13 FROM "${next.table}" WHERE _document_id = ?`).get(late)).toEqual({ isbn_13: swdeGold.get('isbn_13')!.get(page(PAGES))![0] });
  });
});
