/**
 * The direct-extraction fallback on `evaporate worker` processes over a real Redis (db 12 of 127.0.0.1:6379,
 * a queue per test), each worker calling the fake OpenAI-compatible endpoint (a real HTTP server in this
 * process) as its own extraction model. The coordinator keeps the cache, the ledger and the budget.
 *
 * The corpus is fixtures/shards; the one function learned for submission_number answers only where the
 * number ends in an even digit, so about half of the 60 pages go to the fallback.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withShardQueue } from '../src/app/shards.js';
import { loadSettings, type Settings } from '../src/config.js';
import { ingestFiles } from '../src/ingest/ingest.js';
import { createLlm, jobLlmUsage, llmConfigFromEnv } from '../src/llm/index.js';
import { createPipelineServices, runExtractionHere } from '../src/pipeline/service.js';
import { openDatabase } from '../src/store/database.js';
import { setLabels } from '../src/store/labels.js';
import type { WatchedChild } from './child-lines.js';
import { spawnShardWorker, startShardWorkers, stopShardWorkers } from './shard-workers.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';
import { nativeAvailable } from '../src/llm/local/addon.js';
import { gpt2VocabModel } from './native-fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = path.join(root, 'fixtures', 'shards');
const REDIS_DB = 12;
const redisUrl = `redis://127.0.0.1:6379/${REDIS_DB}`;
const MODEL = 'fake-extractor';
const LABELLED = ['0002', '0013', '0024', '0035', '0046'];
const EVEN_ONLY = `function extract(text) {
  const m = text.match(/Submission number\\W*(K[0-9]{6})/);
  return m && /[02468]$/.test(m[1]) ? m[1] : null;
}`;
const REQUEST = { mode: 'closed', attributes: ['submission_number'], fallbackDirect: true };

let fake: FakeOpenAI;
let seed: string;
let corpusId: number;
let gold: Map<string, string>;
let reference: Outcome;
let testNo = 0;

interface Outcome {
  jobId: number;
  rows: Record<string, unknown>[];
  provenance: unknown[];
  paidCalls: number;
}

const fresh = () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-direct-')), 'e.db');
  fs.copyFileSync(seed, file);
  return file;
};

function settingsFor(file: string, queue: string): Settings {
  const base = loadSettings({ databasePath: file });
  return {
    ...base,
    pipeline: { ...base.pipeline, batchSize: 20 },
    sandbox: { ...base.sandbox, workers: 1 },
    shards: { ...base.shards, redisUrl, queue, prefix: queue, pollMs: 200, lockMs: 1500, stalledCheckMs: 500, backoffMs: 100, directCalls: 8 },
  };
}

/**
 * One extraction with this process as the coordinator. With a queue, both the corpus pass and the fallback go
 * to workers; without, the fallback calls the fake endpoint from here. The job's own model (silver labels) is
 * not configured either way, so the two runs differ only in where the fallback ran.
 */
async function extract(file: string, queue?: string, request: object = REQUEST, model = MODEL): Promise<Outcome & { byModel: { model: string; calls: number }[] }> {
  const settings = settingsFor(file, queue ?? 'none');
  const db = openDatabase(file);
  const config = { ...llmConfigFromEnv({ OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'test-key', EVAPORATE_MODEL_EXTRACTION: model }) };
  const base = createPipelineServices(db, settings, {
    llm: createLlm({ db, settings, config: llmConfigFromEnv({}) }),
    extraCandidates: async () => [{ id: 'test:even', source: EVEN_ONLY, origin: 'induction' as const, prompt: 'test' }],
  });
  const services = queue ? withShardQueue(base, settings, () => {}, config) : { ...base, fallbackLlm: createLlm({ db, settings, config }) };
  try {
    const { jobId, result } = await runExtractionHere(services, corpusId, request);
    const rows = db.prepare(`SELECT * FROM "${result.table}" ORDER BY _document_id`).all() as Record<string, unknown>[];
    const provenance = (db.prepare(`SELECT * FROM "${result.table}__provenance" ORDER BY _document_id, attribute`).all() as Record<string, unknown>[]).map((p) => ({
      ...p,
      functions: (JSON.parse(String(p.functions ?? '[]')) as string[]).map((id) => db.prepare('SELECT source_hash FROM functions WHERE id = ?').pluck().get(Number(id))),
    }));
    const usage = jobLlmUsage(db, jobId);
    return { jobId, rows, provenance, paidCalls: usage.calls - usage.cacheHits, byModel: usage.byModel };
  } finally {
    await services.close();
    db.close();
  }
}

type WorkerProc = WatchedChild;

function worker(queue: string, env: Record<string, string> = {}): WorkerProc {
  return spawnShardWorker(redisUrl, queue, {
      EVAPORATE_SHARD_DIRECT_CALLS: '8',
      OPENAI_BASE_URL: fake.url,
      OPENAI_API_KEY: 'test-key',
      EVAPORATE_MODEL_EXTRACTION: MODEL,
      ...env,
    });
}

const startWorkers = (queue: string, n: number, env: Record<string, string> = {}) => startShardWorkers(n, () => worker(queue, env));
const stopWorkers = stopShardWorkers;

const queueName = () => `evdirect-${process.pid}-${++testNo}`;
const directDone = (ws: WorkerProc[]) => ws.flatMap((w) => w.lines.filter((l) => /^shard-done .*direct:/.test(l)));

/** The fake model reads the number off the passage it was shown, as a model would. */
function answerFromPrompt(fakeServer: FakeOpenAI): void {
  fakeServer.on(/Submission number/, (req) => {
    const m = req.prompt.match(/Submission number\W*(K[0-9]{6})/);
    return JSON.stringify({ value: m ? m[1] : null });
  });
}

beforeAll(async () => {
  const redis = new Redis(redisUrl);
  await redis.ping();
  redis.disconnect();
  fake = await startFakeOpenAI({ models: [MODEL] });
  seed = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-direct-seed-')), 'seed.db');
  const db = openDatabase(seed);
  corpusId = Number(db.prepare("INSERT INTO corpora (name) VALUES ('approvals')").run().lastInsertRowid);
  const pages = fs.readdirSync(path.join(fixtures, 'pages')).sort();
  await ingestFiles(db, corpusId, pages.map((f) => ({ filename: f, bytes: fs.readFileSync(path.join(fixtures, 'pages', f)) })), { settings: loadSettings().ingest });
  const rows = fs.readFileSync(path.join(fixtures, 'gold.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
  gold = new Map(rows.map((g) => [`${g[0]}.html`, g[1]]));
  setLabels(db, corpusId, rows.filter((g) => LABELLED.includes(g[0])).map((g) => ({ document: `${g[0]}.html`, attribute: 'submission_number', values: [g[1]] })));
  db.close();
  answerFromPrompt(fake);
  reference = await extract(fresh());
}, 120_000);

beforeEach(() => {
  fake.reset();
  answerFromPrompt(fake);
});

afterAll(async () => {
  const redis = new Redis(redisUrl);
  const keys = await redis.keys(`evdirect-${process.pid}-*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await fake?.close();
});

describe('the direct-extraction fallback on worker processes', () => {
  it('in process, the fallback fills the cells the function left empty (the reference)', () => {
    const direct = (reference.provenance as { origin: string }[]).filter((p) => p.origin === 'direct');
    expect(direct.length).toBeGreaterThan(15);
    expect(direct.length).toBeLessThan(45);
    expect(reference.paidCalls).toBe(direct.length);
    expect(reference.rows.every((r) => r.submission_number !== null)).toBe(true);
  });

  it('gives the same table and provenance from 2 workers, with each call counted and cached once in the coordinator', async () => {
    const queue = queueName();
    const ws = await startWorkers(queue, 2);
    try {
      const file = fresh();
      const got = await extract(file, queue);
      expect(got.rows).toEqual(reference.rows);
      expect(got.provenance).toEqual(reference.provenance);
      const direct = (got.provenance as { origin: string }[]).filter((p) => p.origin === 'direct').length;
      // The workers called the endpoint; the coordinator's ledger counts each answer once.
      expect(fake.chatRequests.length).toBe(direct);
      expect(got.paidCalls).toBe(direct);
      expect(directDone(ws).length).toBeGreaterThanOrEqual(Math.ceil(direct / 8));
      for (const w of ws) expect(w.lines.join('\n')).not.toContain('test-key');

      // A second job on the same database asks the workers for nothing: every answer is in the coordinator's cache.
      fake.reset();
      answerFromPrompt(fake);
      const again = await extract(file, queue);
      expect(again.rows).toEqual(reference.rows);
      expect(fake.chatRequests.length).toBe(0);
      expect(again.paidCalls).toBe(0);
    } finally {
      await stopWorkers(ws);
    }
  }, 120_000);

  it('a worker SIGKILLed with calls in hand: its shard runs again elsewhere, and no cell or charge is doubled', async () => {
    fake.setLatency(400);
    const queue = queueName();
    const [a] = await startWorkers(queue, 1);
    let b: WorkerProc | undefined;
    try {
      const job = extract(fresh(), queue);
      await a.waitFor(/^shard-start .*direct:/);
      // Killed once its calls are at the endpoint, so they were sent (and would be paid for) but never answered.
      while (fake.inFlight === 0) await new Promise((r) => setTimeout(r, 20));
      b = worker(queue);
      a.proc.kill('SIGKILL');
      const got = await job;
      expect(got.rows).toEqual(reference.rows);
      expect(got.provenance).toEqual(reference.provenance);
      const direct = (got.provenance as { origin: string }[]).filter((p) => p.origin === 'direct').length;
      // The killed worker's calls reached the endpoint and were asked again: the endpoint saw more, the job paid once.
      expect(fake.chatRequests.length).toBeGreaterThan(direct);
      expect(got.paidCalls).toBe(direct);
      expect(directDone([b]).length).toBeGreaterThan(0);
    } finally {
      await stopWorkers(b ? [a, b] : [a]);
    }
  }, 120_000);

  it('Redis losing its data mid-fallback: the coordinator issues the lost calls again, and the job pays for each once', async () => {
    fake.setLatency(400);
    const queue = queueName();
    const ws = await startWorkers(queue, 1);
    try {
      const job = extract(fresh(), queue);
      await ws[0].waitFor(/^shard-start .*direct:/);
      while (fake.inFlight === 0) await new Promise((r) => setTimeout(r, 20));
      const redis = new Redis(redisUrl);
      await redis.flushdb(); // db 12 is this test file's alone
      redis.disconnect();
      const got = await job;
      expect(got.rows).toEqual(reference.rows);
      expect(got.provenance).toEqual(reference.provenance);
      const direct = (got.provenance as { origin: string }[]).filter((p) => p.origin === 'direct').length;
      expect(fake.chatRequests.length).toBeGreaterThan(direct);
      expect(got.paidCalls).toBe(direct);
    } finally {
      await stopWorkers(ws);
    }
  }, 120_000);

  it('a budget stops the fallback before the workers are asked for more than it allows', async () => {
    const queue = queueName();
    const ws = await startWorkers(queue, 1);
    try {
      await expect(extract(fresh(), queue, { ...REQUEST, budget: { maxTokens: 3000 } })).rejects.toMatchObject({ code: 'budget_exceeded' });
      expect(fake.chatRequests.length).toBeLessThan(10);
    } finally {
      await stopWorkers(ws);
    }
  }, 120_000);

  it('a worker that serves another model answers with model_mismatch, and the job fails saying both names', async () => {
    const queue = queueName();
    const ws = await startWorkers(queue, 1, { EVAPORATE_MODEL_EXTRACTION: 'other-model' });
    try {
      await expect(extract(fresh(), queue)).rejects.toThrow(/serves model "other-model" and the job asks for "fake-extractor"/);
      expect(fake.chatRequests.length).toBe(0);
    } finally {
      await stopWorkers(ws);
    }
  }, 120_000);

  it('a worker without an extraction model takes corpus shards only; the fallback waits for one that has it', async () => {
    const queue = queueName();
    const [plain] = await startWorkers(queue, 1, { EVAPORATE_MODEL_EXTRACTION: '', OPENAI_API_KEY: '' });
    expect(plain.lines.join('\n')).toMatch(/no extraction model, so no direct-extraction shards/);
    let later: WorkerProc | undefined;
    try {
      const job = extract(fresh(), queue);
      await plain.waitFor(/^shard-done .*batch:/);
      await new Promise((r) => setTimeout(r, 1500));
      expect(fake.chatRequests.length).toBe(0);
      later = worker(queue);
      const got = await job;
      expect(got.rows).toEqual(reference.rows);
      expect(directDone([plain])).toHaveLength(0);
      expect(directDone([later]).length).toBeGreaterThan(0);
    } finally {
      await stopWorkers(later ? [plain, later] : [plain]);
    }
  }, 120_000);

  it('agrees with the gold values on every page', () => {
    const db = openDatabase(seed);
    const names = new Map((db.prepare('SELECT id, filename FROM documents').all() as { id: number; filename: string }[]).map((d) => [d.id, d.filename]));
    db.close();
    for (const r of reference.rows) expect(r.submission_number).toBe(gold.get(names.get(r._document_id as number)!));
  });
});

describe.skipIf(!nativeAvailable())('the direct-extraction fallback on a worker serving the local engine', () => {
  it('the worker answers with its local BASED model; the coordinator, which has no model, counts the calls under it', async () => {
    const dir = gpt2VocabModel(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-direct-model-')), 'model'));
    const queue = queueName();
    const [w] = await startWorkers(queue, 1, { EVAPORATE_LOCAL_MODEL_DIR: dir, EVAPORATE_LOCAL_THREADS: '1', EVAPORATE_LOCAL_MAX_NEW_TOKENS: '8', EVAPORATE_MODEL_EXTRACTION: '' });
    try {
      expect(w.lines.join('\n')).toMatch(/direct extraction with model "local-based"/);
      // The coordinator names the model the workers serve; it needs neither the weights nor an endpoint.
      const got = await extract(fresh(), queue, REQUEST, 'local-based');
      const fallbacks = (reference.provenance as { origin: string }[]).filter((p) => p.origin === 'direct').length;
      expect(fake.chatRequests.length).toBe(0);
      // Random weights answer nothing usable, so the cells stay empty; every one of them was asked once.
      expect(got.byModel.find((m) => m.model === 'local-based')?.calls).toBe(fallbacks);
      expect(directDone([w]).length).toBeGreaterThan(0);
    } finally {
      await stopWorkers([w]);
    }
  }, 180_000);
});
