/**
 * End to end through HTTP: upload SWDE pages, start closed and open extractions as jobs, watch them finish,
 * query the table. The model is the fake OpenAI server (scripted answers include throwing, hanging and wrong
 * functions, a wrong direct extraction and malformed outputs); everything else is the real service stack:
 * composed LLM provider with cache and ledger, sandbox pool, label model, durable job runner, SQLite file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { loadSettings } from '../src/config.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { buildApp } from '../src/server/app.js';
import { createLlm, llmConfigFromEnv } from '../src/llm/index.js';
import { JobRunner } from '../src/jobs/runner.js';
import { createPipelineServices, EXTRACT_JOB_KIND, extractHandler, type PipelineServices } from '../src/pipeline/service.js';
import { normalizeForComparison } from '../src/weak-supervision/normalize.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';
import { scriptModel, swdeDir, swdeGold } from './pipeline-script.js';

const PAGES = 30;
const ATTRS = ['title', 'author', 'isbn_13', 'publisher', 'publication_date'];

let fake: FakeOpenAI;
let db: Db;
let dir: string;
let app: FastifyInstance;
let url: string;
let runner: JobRunner;
let services: PipelineServices;

const post = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
async function json(p: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url + p, init);
  const text = await res.text();
  return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}
async function waitFor(corpus: number, jobId: number): Promise<any> {
  for (let i = 0; i < 1200; i++) {
    const { body } = await json(`/corpora/${corpus}/extractions/${jobId}`);
    if (['succeeded', 'failed', 'cancelled'].includes(body.state)) return body;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('job did not finish');
}

beforeAll(async () => {
  fake = await startFakeOpenAI();
  scriptModel(fake, { wrongPublisherPages: ['0004', '0011'], malformedIsbnPages: ['0008'] });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-e2e-'));
  const file = path.join(dir, 'e.db');
  const base = loadSettings({ databasePath: file });
  const settings = { ...base, sandbox: { ...base.sandbox, callTimeoutMs: 1000, workers: 2 }, jobs: { ...base.jobs, pollMs: 50 } };
  db = openDatabase(file);
  const llm = createLlm({ db, settings, config: llmConfigFromEnv({ OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'test', EVAPORATE_MODEL: 'fake-model' }) });
  services = createPipelineServices(db, settings, { llm });
  runner = new JobRunner({ db, settings: settings.jobs, handlers: { [EXTRACT_JOB_KIND]: extractHandler(services) } });
  runner.start();
  app = await buildApp({ db, settings });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await runner?.stop(1000);
  await app?.close();
  await services?.close();
  await fake?.close();
  db?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('upload, extract, query over HTTP', () => {
  let corpus: number;
  let table: string;

  it('uploads SWDE pages', async () => {
    corpus = (await json('/corpora', post({ name: 'christianbook' }))).body.id;
    const form = new FormData();
    for (let i = 0; i < PAGES; i++) {
      const name = `${String(i).padStart(4, '0')}.htm`;
      form.append('file', new Blob([fs.readFileSync(path.join(swdeDir, 'pages', name))]), name);
    }
    const up = await json(`/corpora/${corpus}/documents`, { method: 'POST', body: form });
    expect(up.status).toBe(201);
  });

  it('refuses bad extraction requests with a clear error', async () => {
    const closedNoAttrs = await json(`/corpora/${corpus}/extractions`, post({ mode: 'closed' }));
    expect(closedNoAttrs.status).toBe(400);
    expect(closedNoAttrs.body.error.message).toMatch(/attributes/);
    expect((await json(`/corpora/${corpus}/extractions`, post({ mode: 'sideways' }))).status).toBe(400);
    expect((await json('/corpora/nope/extractions', post({ mode: 'open' }))).status).toBe(404);
  });

  it('runs a closed extraction as a job and fills the table right where the good functions agree', async () => {
    const started = await json(`/corpora/${corpus}/extractions`, post({ mode: 'closed', attributes: ATTRS, candidates: 12, budget: { maxTokens: 2_000_000 } }));
    expect(started.status).toBe(202);
    const done = await waitFor(corpus, started.body.id);
    expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
    expect(done.llm.calls).toBeGreaterThan(0);
    table = done.result.table;

    const q = await json('/query', post({ sql: `SELECT d.filename, t.isbn_13, t.publisher, t.publication_date, t.title FROM "${table}" t JOIN documents d ON d.id = t._document_id ORDER BY d.filename` }));
    expect(q.status).toBe(200);
    expect(q.body.rows).toHaveLength(PAGES);
    for (const [filename, isbn, publisher, year, title] of q.body.rows) {
      const page = String(filename).slice(0, 4);
      expect(isbn).toBe(swdeGold.get('isbn_13')!.get(page)![0]);
      expect(publisher).toBe(swdeGold.get('publisher')!.get(page)![0]);
      expect(year).toBe(Number(swdeGold.get('publication_date')!.get(page)![0]));
      // Gold titles carry the page's raw entities ("&nbsp;do hard things"): compare as the metric does.
      expect(normalizeForComparison(title)).toBe(normalizeForComparison(swdeGold.get('title')!.get(page)![0]));
    }

    const prov = await json('/query', post({ sql: `SELECT p.value, substr(d.text, p.span_start + 1, p.span_end - p.span_start) AS at_span FROM "${table}__provenance" p JOIN documents d ON d.id = p._document_id WHERE p.attribute = 'isbn_13'` }));
    expect(prov.body.rows).toHaveLength(PAGES);
    for (const [value, atSpan] of prov.body.rows) expect(atSpan).toBe(value);

    const csv = await json('/query', post({ sql: `SELECT isbn_13 FROM "${table}" ORDER BY _document_id LIMIT 2`, format: 'csv' }));
    expect(csv.body).toBe(`isbn_13\r\n${swdeGold.get('isbn_13')!.get('0000')![0]}\r\n${swdeGold.get('isbn_13')!.get('0001')![0]}\r\n`);
    expect((await json('/query', post({ sql: `DROP TABLE "${table}"` }))).body.error.code).toBe('query_not_read_only');

    const described = await json(`/corpora/${corpus}/table`);
    expect(described.body.columns.map((c: any) => c.name)).toEqual(ATTRS);
  }, 300_000);

  it('re-runs the same extraction from the LLM cache: zero new model calls', async () => {
    const before = fake.chatRequests.length;
    const started = await json(`/corpora/${corpus}/extractions`, post({ mode: 'closed', attributes: ATTRS, candidates: 12 }));
    const done = await waitFor(corpus, started.body.id);
    expect(done.state).toBe('succeeded');
    expect(fake.chatRequests.length).toBe(before);
    expect(done.result.llm.cachedCalls).toBe(done.result.llm.calls);
  }, 300_000);

  it('runs an open extraction that discovers the schema', async () => {
    const started = await json(`/corpora/${corpus}/extractions`, post({ mode: 'open', candidates: 12 }));
    const done = await waitFor(corpus, started.body.id);
    expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
    expect(done.result.attributes.map((a: any) => a.name).sort()).toEqual(['author', 'isbn_13', 'publication_date', 'publisher', 'title']);
    const list = await json(`/corpora/${corpus}/extractions`);
    expect(list.body.extractions).toHaveLength(3);
  }, 300_000);
});
