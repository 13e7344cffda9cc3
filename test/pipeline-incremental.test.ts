/**
 * The nightly path: after a full extraction, new documents go through the stored functions and label-model
 * weights without any LLM call, and their cells land in the same table with provenance.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/store/database.js';
import { loadSettings } from '../src/config.js';
import { ingestFile } from '../src/ingest/ingest.js';
import { createLlm, llmConfigFromEnv } from '../src/llm/index.js';
import { createNightlyHandler } from '../src/jobs/nightly.js';
import { createPipelineServices, type PipelineServices } from '../src/pipeline/service.js';
import { createIncrementalPipeline } from '../src/pipeline/incremental.js';
import { memoryJobContext, runExtraction } from '../src/pipeline/extract-job.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';
import { scriptModel, swdeDir, swdeGold } from './pipeline-script.js';

let fake: FakeOpenAI;
let db: Db;
let dir: string;
let services: PipelineServices;
const settings = loadSettings();

async function addPages(from: number, to: number, rewrite: (html: string) => string = (html) => html): Promise<void> {
  for (let i = from; i < to; i++) {
    const name = `${String(i).padStart(4, '0')}.htm`;
    const bytes = Buffer.from(rewrite(fs.readFileSync(path.join(swdeDir, 'pages', name), 'latin1')), 'latin1');
    await ingestFile(db, 1, { filename: name, bytes }, { settings: settings.ingest });
  }
}

beforeAll(async () => {
  fake = await startFakeOpenAI();
  scriptModel(fake);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-incremental-'));
  db = openDatabase(path.join(dir, 'e.db'));
  db.prepare("INSERT INTO corpora (name) VALUES ('books')").run();
  settings.sandbox = { ...settings.sandbox, workers: 2 };
  const llm = createLlm({ db, settings, config: llmConfigFromEnv({ OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'test', EVAPORATE_MODEL: 'fake-model' }) });
  services = createPipelineServices(db, settings, { llm });
});

afterAll(async () => {
  await services?.close();
  await fake?.close();
  db?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('incremental extraction', () => {
  it('extends the table to new documents with stored functions and no LLM call', async () => {
    await addPages(0, 16);
    await runExtraction(services, { corpusId: 1, mode: 'closed', attributes: [{ name: 'isbn_13' }, { name: 'publisher' }], candidates: 12 }, memoryJobContext({ jobId: 0 }));
    const watermark = db.prepare('SELECT max(id) FROM documents').pluck().get() as number;
    await addPages(16, 28);
    const calls = fake.chatRequests.length;
    const nightly = createNightlyHandler({ db, pipeline: createIncrementalPipeline(services), settings: settings.jobs });
    const jobId = Number(db.prepare("INSERT INTO jobs (kind, corpus_id) VALUES ('nightly', 1)").run().lastInsertRowid);
    const result = await nightly({ corpusId: 1, from: watermark }, memoryJobContext({ jobId }));
    expect(fake.chatRequests.length).toBe(calls);
    expect(result.documents).toBe(12);
    expect(result.attributes.map((a) => a.attribute).sort()).toEqual(['isbn_13', 'publisher']);

    const table = db.prepare('SELECT table_name FROM result_tables WHERE corpus_id = 1').pluck().get() as string;
    const rows = db.prepare(`SELECT d.filename, t.isbn_13, t.publisher FROM "${table}" t JOIN documents d ON d.id = t._document_id ORDER BY d.filename`).all() as { filename: string; isbn_13: string; publisher: string }[];
    expect(rows).toHaveLength(28);
    for (const r of rows.slice(16)) {
      const page = r.filename.slice(0, 4);
      expect(r.isbn_13).toBe(swdeGold.get('isbn_13')!.get(page)![0]);
      expect(r.publisher).toBe(swdeGold.get('publisher')!.get(page)![0]);
    }
    const spans = db
      .prepare(`SELECT p.value, substr(d.text, p.span_start + 1, p.span_end - p.span_start) AS at FROM "${table}__provenance" p JOIN documents d ON d.id = p._document_id WHERE p._document_id > ?`)
      .all(watermark) as { value: string; at: string }[];
    expect(spans).toHaveLength(24);
    for (const s of spans) expect(s.at).toBe(s.value);
    expect(db.prepare('SELECT rows FROM result_tables WHERE corpus_id = 1').pluck().get()).toBe(28);
  });

  it('re-synthesizes only the attribute whose new documents changed format', async () => {
    // The site relabels "ISBN-13:" as "EAN:" on its new pages: the kept isbn_13 functions abstain there, publisher is untouched.
    const watermark = db.prepare('SELECT max(id) FROM documents').pluck().get() as number;
    await addPages(28, 40, (html) => html.replaceAll('<b>ISBN-13:</b>', '<b>EAN:</b>'));
    const before = fake.chatRequests.length;
    const nightly = createNightlyHandler({ db, pipeline: createIncrementalPipeline(services), settings: settings.jobs });
    const jobId = Number(db.prepare("INSERT INTO jobs (kind, corpus_id) VALUES ('nightly', 1)").run().lastInsertRowid);
    const result = await nightly({ corpusId: 1, from: watermark }, memoryJobContext({ jobId }));
    const byName = new Map(result.attributes.map((a) => [a.attribute, a]));
    expect(byName.get('isbn_13')).toMatchObject({ drifted: true, resynthesized: true });
    expect(byName.get('publisher')).toMatchObject({ drifted: false, resynthesized: false });
    // the model was asked about isbn_13 alone (silver labels and synthesis on a sample half made of new pages)
    const asked = fake.chatRequests.slice(before);
    expect(asked.length).toBeGreaterThan(0);
    // ("isbn_13" appears in no page text, only in a prompt about that attribute)
    expect(asked.filter((r) => !r.prompt.includes('isbn_13'))).toEqual([]);
    const health = db.prepare("SELECT a.name, h.run_kind, h.drifted FROM attribute_health h JOIN attributes a ON a.id = h.attribute_id WHERE h.job_id = ? ORDER BY a.name, h.id").all(jobId);
    expect(health).toContainEqual({ name: 'isbn_13', run_kind: 'nightly', drifted: 1 });
    expect(health).toContainEqual({ name: 'publisher', run_kind: 'nightly', drifted: 0 });
  });
});
