/**
 * The corpus pass on `evaporate worker` processes over a real Redis (db 13 of 127.0.0.1:6379, a key prefix per
 * test): the same table and provenance as the in-process run from 1, 2 and 3 workers, and through a worker
 * SIGKILLed or SIGTERMed mid-shard and a Redis flushed mid-job. The extraction is closed and learned from a few
 * labelled fixture pages (wrapper induction, no model), plus one deliberately slow but correct function so a
 * shard takes long enough (about 40 ms a document) to be interrupted in the middle.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings, type Settings } from '../src/config.js';
import { ingestFiles } from '../src/ingest/ingest.js';
import { createLlm, llmConfigFromEnv } from '../src/llm/index.js';
import { inductionHook } from '../src/pipeline/induction/candidates.js';
import { createPipelineServices, runExtractionHere } from '../src/pipeline/service.js';
import { QueueShardRunner } from '../src/shards/coordinator.js';
import { openDatabase } from '../src/store/database.js';
import { setLabels } from '../src/store/labels.js';
import { startDefaultJobSystem } from '../src/app/job-system.js';
import { jobEvents } from '../src/jobs/events.js';
import { EXTRACT_JOB_KIND, parseExtractRequest } from '../src/pipeline/service.js';
import type { WatchedChild } from './child-lines.js';
import { spawnShardWorker, startShardWorkers, stopShardWorkers } from './shard-workers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = path.join(root, 'fixtures', 'shards');
const REDIS_DB = 13;
const redisUrl = `redis://127.0.0.1:6379/${REDIS_DB}`;
const ATTRS = ['submission_number', 'applicant', 'decision_date'];
const LABELLED = ['0002', '0013', '0024', '0035', '0046'];
const BATCH = 10;
const SLOW = `function extract(text, doc) {
  const end = Date.now() + 40;
  while (Date.now() < end) {}
  const m = text.match(/Submission number\\W*(K[0-9]{6})/);
  return m ? m[1] : null;
}`;

let seed: string;
let corpusId: number;
let reference: Outcome;
let referenceFile: string;
let testNo = 0;

interface Outcome {
  rows: unknown[];
  provenance: unknown[];
}

interface Variant {
  /** A second function for submission_number, scored and kept alongside the slow one. */
  extra?: string;
  sandbox?: Partial<Settings['sandbox']>;
  shards?: Partial<Settings['shards']>;
  pipeline?: Partial<Settings['pipeline']>;
}

function settingsFor(file: string, queue: string, variant: Variant = {}): Settings {
  const base = loadSettings({ databasePath: file });
  return {
    ...base,
    pipeline: { ...base.pipeline, batchSize: BATCH, ...variant.pipeline },
    sandbox: { ...base.sandbox, workers: 1, ...variant.sandbox },
    shards: { ...base.shards, redisUrl, queue, prefix: queue, pollMs: 200, lockMs: 1500, stalledCheckMs: 500, backoffMs: 100, ...variant.shards },
  };
}

const fresh = () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-shards-')), 'e.db');
  fs.copyFileSync(seed, file);
  return file;
};

/** Runs the extraction in this process as the coordinator; with a queue, the corpus pass goes to the workers. */
async function extract(
  file: string,
  queue?: string,
  onRunner?: (r: QueueShardRunner) => void,
  variant: Variant = {},
): Promise<Outcome & { runner?: QueueShardRunner }> {
  const settings = settingsFor(file, queue ?? 'none', variant);
  const db = openDatabase(file);
  const llm = createLlm({ db, settings, config: llmConfigFromEnv({}) });
  const induction = inductionHook(db, settings);
  const services = createPipelineServices(db, settings, {
    llm,
    extraCandidates: async (input) => [
      ...(await induction(input)),
      ...(input.attribute.name === 'submission_number' ? [{ id: 'test:slow', source: SLOW, origin: 'induction' as const, prompt: 'test' }] : []),
      ...(input.attribute.name === 'submission_number' && variant.extra ? [{ id: 'test:extra', source: variant.extra, origin: 'induction' as const, prompt: 'test' }] : []),
    ],
  });
  const runner = queue ? new QueueShardRunner(settings.shards) : undefined;
  if (runner) onRunner?.(runner);
  try {
    const { result } = await runExtractionHere({ ...services, ...(runner ? { shards: runner } : {}) }, corpusId, { mode: 'closed', attributes: ATTRS });
    const rows = db.prepare(`SELECT * FROM "${result.table}" ORDER BY _document_id`).all();
    // Function row ids are per database; their sources are what must agree.
    const provenance = (db.prepare(`SELECT * FROM "${result.table}__provenance" ORDER BY _document_id, attribute`).all() as Record<string, unknown>[]).map((p) => ({
      ...p,
      functions: (JSON.parse(String(p.functions ?? '[]')) as string[]).map((id) => db.prepare('SELECT source_hash FROM functions WHERE id = ?').pluck().get(Number(id))).sort(),
    }));
    return { rows, provenance, runner };
  } finally {
    await runner?.close();
    await services.close();
    db.close();
  }
}

type WorkerProc = WatchedChild;

function worker(queue: string, env: Record<string, string> = {}): WorkerProc {
  return spawnShardWorker(redisUrl, queue, env);
}

const startWorkers = (queue: string, n: number, env: Record<string, string> = {}) => startShardWorkers(n, () => worker(queue, env));
const stopWorkers = stopShardWorkers;

const queueName = () => `evtest-${process.pid}-${++testNo}`;
const shardsDone = (ws: WorkerProc[]) => ws.flatMap((w) => w.lines.filter((l) => l.startsWith('shard-done')));

beforeAll(async () => {
  const redis = new Redis(redisUrl);
  await redis.ping();
  redis.disconnect();
  seed = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-shards-seed-')), 'seed.db');
  const db = openDatabase(seed);
  corpusId = Number(db.prepare("INSERT INTO corpora (name) VALUES ('approvals')").run().lastInsertRowid);
  const pages = fs.readdirSync(path.join(fixtures, 'pages')).sort();
  await ingestFiles(db, corpusId, pages.map((f) => ({ filename: f, bytes: fs.readFileSync(path.join(fixtures, 'pages', f)) })), { settings: loadSettings().ingest });
  const gold = fs.readFileSync(path.join(fixtures, 'gold.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
  setLabels(
    db,
    corpusId,
    gold.filter((g) => LABELLED.includes(g[0])).flatMap((g) => ATTRS.map((a, i) => ({ document: `${g[0]}.html`, attribute: a, values: [g[i + 1]] }))),
  );
  db.close();
  referenceFile = fresh();
  reference = await extract(referenceFile);
}, 120_000);

afterAll(async () => {
  // Only this file's keys: other tests may share the Redis server.
  const redis = new Redis(redisUrl);
  const keys = await redis.keys(`evtest-${process.pid}-*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

describe('the corpus pass on worker processes', () => {
  it('in process fills the table from the labelled pages (the reference)', () => {
    expect(reference.rows).toHaveLength(60);
    const filled = (reference.rows as Record<string, unknown>[]).filter((r) => r.submission_number && r.applicant && r.decision_date);
    expect(filled.length).toBe(60);
    // The slow function is among the kept ones, so a shard takes long enough to be interrupted mid-way.
    const db = openDatabase(referenceFile);
    expect(db.prepare('SELECT selected FROM functions WHERE source = ?').pluck().get(SLOW)).toBe(1);
    db.close();
  });

  for (const n of [1, 2, 3]) {
    it(`gives the same table and provenance from ${n} worker process(es) started before the coordinator`, async () => {
      const queue = queueName();
      const ws = await startWorkers(queue, n);
      try {
        const got = await extract(fresh(), queue);
        expect(got.rows).toEqual(reference.rows);
        expect(got.provenance).toEqual(reference.provenance);
        expect(shardsDone(ws).length).toBeGreaterThanOrEqual(60 / BATCH);
        // Each shard's documents left Redis with its result.
        const redis = new Redis(redisUrl);
        expect(await redis.keys(`${queue}:${queue}:documents:*`)).toEqual([]);
        redis.disconnect();
        if (n > 1) expect(ws.filter((w) => w.lines.some((l) => l.startsWith('shard-done'))).length).toBeGreaterThan(1);
      } finally {
        await stopWorkers(ws);
      }
    }, 120_000);
  }

  it('cuts shards by bytes as the in-process pass cuts its batches: same table, a shard per batch of the cut', async () => {
    // The pages are about 1 KB of HTML and text each: 2.5 KB makes shards of 2 and 3 documents.
    const queue = queueName();
    const ws = await startWorkers(queue, 2);
    try {
      const file = fresh();
      const got = await extract(file, queue, undefined, { pipeline: { batchBytes: 2500 } });
      expect(got.rows).toEqual(reference.rows);
      expect(got.provenance).toEqual(reference.provenance);
      const db = openDatabase(file);
      const cut = JSON.parse(db.prepare("SELECT result FROM job_checkpoints WHERE key = 'batches'").pluck().get() as string) as number[];
      db.close();
      expect(Math.max(...cut)).toBeLessThan(BATCH);
      expect(cut.length).toBeGreaterThan(2 * (60 / BATCH));
      expect(shardsDone(ws).length).toBeGreaterThanOrEqual(cut.length);
      const documents = ws.flatMap((w) => w.lines.filter((l) => l.startsWith('shard-start')).map((l) => Number(/\((\d+) documents\)/.exec(l)![1])));
      expect(documents.reduce((a, b) => a + b, 0)).toBe(60);
    } finally {
      await stopWorkers(ws);
    }
  }, 120_000);

  it('retries the shard of a SIGKILLed worker on another once its lock expires: no cell lost or doubled', async () => {
    const queue = queueName();
    const [a, b] = await startWorkers(queue, 2);
    try {
      const job = extract(fresh(), queue);
      const line = await a.waitFor(/^shard-start/);
      a.proc.kill('SIGKILL');
      const batch = line.match(/batch:\d+/)![0];
      const got = await job;
      expect(a.lines.some((l) => l.startsWith(`shard-done`) && l.includes(`${batch} `))).toBe(false);
      expect(b.lines.some((l) => l.startsWith('shard-done') && l.includes(`${batch} `))).toBe(true);
      expect(got.rows).toEqual(reference.rows);
      expect(got.provenance).toEqual(reference.provenance);
    } finally {
      await stopWorkers([a, b]);
    }
  }, 120_000);

  it('enqueues the missing shards again when Redis loses its data mid-job', async () => {
    const queue = queueName();
    const ws = await startWorkers(queue, 1);
    let runner!: QueueShardRunner;
    try {
      const job = extract(fresh(), queue, (r) => (runner = r));
      await ws[0].waitFor(/^shard-done/);
      await ws[0].waitFor(/^shard-start.*batch:[1-9]/);
      const redis = new Redis(redisUrl);
      await redis.flushdb(); // db 13 is this test file's alone
      redis.disconnect();
      const got = await job;
      expect(runner.stats.reissued).toBeGreaterThan(0);
      expect(got.rows).toEqual(reference.rows);
      expect(got.provenance).toEqual(reference.provenance);
    } finally {
      await stopWorkers(ws);
    }
  }, 120_000);

  it('SIGTERM lets a worker finish the shard in hand, then exit 0; the job completes on the others', async () => {
    const queue = queueName();
    const [a, b] = await startWorkers(queue, 2);
    try {
      const job = extract(fresh(), queue);
      const line = await a.waitFor(/^shard-start/);
      const batch = line.match(/batch:\d+/)![0];
      a.proc.kill('SIGTERM');
      expect(await a.exited).toBe(0);
      expect(a.lines.some((l) => l.startsWith('shard-done') && l.includes(`${batch} `))).toBe(true);
      expect(a.lines.at(-1)).toBe('worker stopped');
      const got = await job;
      expect(got.rows).toEqual(reference.rows);
      expect(got.provenance).toEqual(reference.provenance);
    } finally {
      await stopWorkers([a, b]);
    }
  }, 120_000);

  it('ends the job with an error naming the shard when it fails every attempt (here: it kills each worker that takes it)', async () => {
    const queue = queueName();
    const env = { EVAPORATE_SHARD_ATTEMPTS: '2' };
    const ws = await startWorkers(queue, 2, env);
    // Every worker that takes batch:0 dies at once (as if the shard ran it out of memory); a fresh one replaces it.
    const guard = (w: WorkerProc) => {
      void w.waitFor(/^shard-start .*batch:0 /).then(
        () => {
          w.proc.kill('SIGKILL');
          const next = worker(queue, env);
          ws.push(next);
          guard(next);
        },
        () => {},
      );
    };
    ws.forEach(guard);
    try {
      const job = extract(fresh(), queue, undefined, { shards: { attempts: 2 } });
      await expect(job).rejects.toThrow(/Shard batch:0 of job 1 \(documents \d+ to \d+\) failed/);
      expect(ws.length).toBeGreaterThanOrEqual(4);
    } finally {
      await stopWorkers(ws);
    }
  }, 120_000);

  it('disables a function that keeps timing out for the whole job, across workers', async () => {
    // Right on the labelled pages, hangs on the others with the amendment note (8 of 60, at most 2 a shard).
    const poisoned = `function extract(text) {
  if (text.includes('amended') && !text.includes('page 0035')) for (;;) {}
  const m = text.match(/Submission number\\W*(K[0-9]{6})/);
  return m ? m[1] : null;
}`;
    const queue = queueName();
    const limits = { EVAPORATE_SANDBOX_TIMEOUT_MS: '300', EVAPORATE_SANDBOX_MAX_FAILURES: '2' };
    const ws = await startWorkers(queue, 2, limits);
    try {
      const file = fresh();
      await extract(file, queue, undefined, { extra: poisoned, sandbox: { callTimeoutMs: 300, maxFailuresPerFunction: 2 } });
      const db = openDatabase(file);
      const kept = db.prepare("SELECT id FROM functions WHERE selected = 1 AND source = ?").pluck().get(poisoned) as number | undefined;
      const batches = (db.prepare("SELECT result FROM job_checkpoints WHERE key LIKE 'batch:%'").pluck().all() as string[]).map((r) => JSON.parse(r));
      db.close();
      expect(kept).toBeDefined();
      const failures = batches.reduce((n, b) => n + Object.values(b.submission_number.failures as Record<string, number>).reduce((a, c) => a + c, 0), 0);
      // Each shard on its own would time out on every amended page it holds, up to 2 a shard: 8 in all.
      // Shared counts stop it at the limit for every shard that starts after; shards already running (one a
      // worker) read the counts when they began, so the bound is the limit times the workers.
      expect(failures).toBeGreaterThanOrEqual(2);
      expect(failures).toBeLessThanOrEqual(2 * ws.length);
    } finally {
      await stopWorkers(ws);
    }
  }, 120_000);

  it('the job system of `serve` / `jobs worker` sends the pass to the workers with EVAPORATE_REDIS_URL, with progress per shard', async () => {
    const queue = queueName();
    const ws = await startWorkers(queue, 1);
    const file = fresh();
    const base = settingsFor(file, queue);
    const settings = { ...base, jobs: { ...base.jobs, pollMs: 50, progressWriteMs: 0 } };
    const db = openDatabase(file);
    const started = startDefaultJobSystem(db, settings, { schedule: false });
    const steps: number[] = [];
    const onProgress = (e: { id: number; step: string | null; done: number }) => {
      if (e.step === 'aggregation') steps.push(e.done);
    };
    jobEvents.onProgress(onProgress);
    try {
      const job = started.system.service.enqueue({ kind: EXTRACT_JOB_KIND, corpusId, params: parseExtractRequest(corpusId, { mode: 'closed', attributes: ATTRS }).params });
      for (let i = 0; i < 600; i++) {
        const view = started.system.service.get(job.id);
        if (['succeeded', 'failed', 'cancelled'].includes(view.state)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const view = started.system.service.get(job.id);
      expect(view.state, JSON.stringify(view.error)).toBe('succeeded');
      expect(shardsDone(ws).length).toBeGreaterThanOrEqual(60 / BATCH);
      // One progress event a finished shard, counting documents.
      expect([...new Set(steps)].sort((a, b) => a - b)).toEqual([0, 10, 20, 30, 40, 50, 60]);
    } finally {
      jobEvents.off('progress', onProgress);
      await started.system.stop();
      await started.closeServices();
      db.close();
      await stopWorkers(ws);
    }
  }, 120_000);
});
