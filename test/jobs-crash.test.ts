import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/store/database.js';
import { enqueueJob } from '../src/jobs/store.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';
import { demoAnswers, seedCorpus } from './jobs-demo-handler.js';
import { watchLines, type WatchedChild } from './child-lines.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const childScript = path.join(root, 'test', 'jobs-child-runner.ts');

function startChild(dbPath: string, llmUrl: string): WatchedChild {
  // One process (node with the tsx loader), not the tsx CLI, which would leave its node child alive on SIGKILL.
  const proc = spawn(process.execPath, ['--import', 'tsx', childScript, dbPath, llmUrl], {
    cwd: root,
    env: {
      ...process.env,
      EVAPORATE_JOB_LEASE_MS: '1500',
      EVAPORATE_JOB_HEARTBEAT_MS: '300',
      EVAPORATE_JOB_POLL_MS: '100',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return watchLines(proc, { logStderrOnFailure: true });
}

function tmpDb(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-jobs-')), 'e.db');
}

function snapshot(db: Db, corpusId: number) {
  return {
    extractions: db
      .prepare(
        `SELECT e.document_id, a.name, e.value FROM extractions e JOIN attributes a ON a.id = e.attribute_id
         ORDER BY e.document_id, a.name`,
      )
      .all(),
    table: db.prepare(`SELECT * FROM "demo_${corpusId}" ORDER BY _document_id`).all(),
  };
}

function setup(documents = 60): { file: string; corpusId: number; jobId: number } {
  const file = tmpDb();
  const db = openDatabase(file);
  const corpusId = seedCorpus(db, 'books', documents);
  const { job } = enqueueJob(db, { kind: 'demo', corpusId, params: { corpusId, batchSize: 10, unitMs: 40 } });
  db.close();
  return { file, corpusId, jobId: job.id };
}

describe('jobs survive SIGKILL', () => {
  let fake: FakeOpenAI;
  let reference: ReturnType<typeof snapshot>;
  let referenceCalls: number;

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    demoAnswers(fake);
    const { file, corpusId } = setup();
    const child = startChild(file, fake.url);
    expect(await child.exited).toBe(0);
    const db = openDatabase(file);
    reference = snapshot(db, corpusId);
    referenceCalls = fake.chatRequests.length;
    db.close();
  });
  afterAll(async () => fake?.close());

  it('an uninterrupted run extracts every document once', () => {
    expect(reference.extractions).toHaveLength(120);
    expect(reference.table).toHaveLength(60);
    expect(reference.table[7]).toEqual({ _document_id: 8, title: 'Book 7', price: '10.50' });
    expect(referenceCalls).toBe(3); // schema + one synthesis per attribute
  });

  // Kill points: in the schema step, during synthesis, in the corpus pass (twice), during materialization.
  // Kill points: in the schema step, during synthesis (before its call, and after the paid call but before the
  // unit is committed), in the corpus pass (twice in a row), during materialization.
  for (const killAt of [
    ['unit-start schema'],
    ['unit-start attribute:price:synthesis'],
    ['llm-done attribute:title:synthesis'],
    ['unit-start corpus:batch:2', 'unit-start corpus:batch:4'],
    ['unit-start materialize'],
  ]) {
    it(`resumes after SIGKILL at ${killAt.join(' then ')} with an identical table and no repeated call`, async () => {
      const before = fake.chatRequests.length;
      const { file, corpusId, jobId } = setup();
      for (const key of killAt) {
        const child = startChild(file, fake.url);
        await child.waitFor(new RegExp(`${key}$`));
        child.proc.kill('SIGKILL');
        expect(await child.exited).toBe(null);
      }
      const last = startChild(file, fake.url);
      expect(await last.exited).toBe(0);
      expect(last.lines.filter((l) => / finished /.test(l)).map((l) => l.replace(/^\d+ /, ""))).toEqual([`finished ${jobId} succeeded`]);

      const db = openDatabase(file);
      expect(snapshot(db, corpusId)).toEqual(reference);
      const job = db.prepare('SELECT state, attempt FROM jobs WHERE id = ?').get(jobId);
      expect(job).toEqual({ state: 'succeeded', attempt: killAt.length + 1 });
      // Each unit committed once; the units in hand at each kill are the only ones started again.
      expect(db.prepare('SELECT count(*) FROM job_checkpoints WHERE job_id = ?').pluck().get(jobId)).toBe(1 + 1 + 2 + 6 + 1);
      // The ledger: every paid call once; a call repeated by the resumed unit was served by the cache.
      const paid = db
        .prepare("SELECT request_hash FROM llm_usage WHERE job_id = ? AND cached = 0 AND status = 'ok'")
        .pluck()
        .all(jobId) as string[];
      expect(paid.length).toBe(referenceCalls);
      expect(new Set(paid).size).toBe(paid.length);
      const hits = db.prepare('SELECT count(*) FROM llm_usage WHERE job_id = ? AND cached = 1').pluck().get(jobId);
      expect(hits).toBe(killAt[0]!.startsWith('llm-done') ? 1 : 0);
      db.close();
      const prompts = fake.chatRequests.slice(before).map((r) => r.prompt);
      expect(prompts.length).toBe(referenceCalls);
      expect(new Set(prompts).size).toBe(prompts.length);
    });
  }
});

describe('two runner processes on one database', () => {
  it('a runner paused past its lease loses the job and cannot commit when it wakes up', async () => {
    const fake = await startFakeOpenAI();
    demoAnswers(fake);
    const { file, jobId } = setup();
    const a = startChild(file, fake.url);
    await a.waitFor(/unit-start corpus:batch:1$/);
    a.proc.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 1800)); // past the 1.5 s lease
    const b = startChild(file, fake.url);
    await b.waitFor(/unit-start corpus:batch:2$/);
    a.proc.kill('SIGCONT');
    expect(await b.exited).toBe(0);
    expect(await a.exited).toBe(0);
    expect(a.lines.some((l) => / unit-end corpus:batch:1$/.test(l))).toBe(true); // it did finish the unit...
    const db = openDatabase(file);
    // ...but the fence refused its commit: the runner that held the lease recorded it.
    const owner = db.prepare("SELECT attempt FROM job_checkpoints WHERE job_id = ? AND key = 'corpus:batch:1'").pluck().get(jobId);
    expect(owner).toBe(2);
    expect(db.prepare('SELECT count(*) FROM extractions').pluck().get()).toBe(120);
    expect(db.prepare('SELECT state, attempt FROM jobs WHERE id = ?').get(jobId)).toEqual({ state: 'succeeded', attempt: 2 });
    db.close();
    await fake.close();
  });

  it('never run the same job or unit twice', async () => {
    const fake = await startFakeOpenAI();
    demoAnswers(fake);
    const file = tmpDb();
    const db = openDatabase(file);
    const ids: number[] = [];
    for (let c = 0; c < 6; c++) {
      const corpusId = seedCorpus(db, `books${c}`, 20);
      ids.push(enqueueJob(db, { kind: 'demo', corpusId, params: { corpusId, batchSize: 5, unitMs: 40 } }).job.id);
    }
    db.close();
    const children = [startChild(file, fake.url), startChild(file, fake.url)];
    expect(await Promise.all(children.map((c) => c.exited))).toEqual([0, 0]);
    const lines = children.flatMap((c) => c.lines);
    const finished = lines.filter((l) => / finished /.test(l)).map((l) => l.replace(/^\d+ /, ''));
    expect(finished.sort()).toEqual(ids.map((id) => `finished ${id} succeeded`).sort());
    // Both runners did work, and every unit of every job started exactly once across them.
    expect(children.every((c) => c.lines.some((l) => / finished /.test(l)))).toBe(true);
    const starts = lines.filter((l) => / unit-start /.test(l)).map((l) => l.replace(/^\d+ /, ''));
    expect(new Set(starts).size).toBe(starts.length);
    expect(starts.length).toBe(6 * (1 + 1 + 2 + 4 + 1));
    const check = openDatabase(file);
    expect(check.prepare('SELECT count(*) FROM extractions').pluck().get()).toBe(6 * 20 * 2);
    expect(check.prepare('SELECT DISTINCT attempt FROM jobs').pluck().all()).toEqual([1]);
    check.close();
    await fake.close();
  });
});

describe('graceful shutdown', () => {
  it('on SIGTERM finishes the unit in hand, hands the job back, closes the database; a restart completes it', async () => {
    const fake = await startFakeOpenAI();
    demoAnswers(fake);
    const { file, jobId } = setup();
    const child = startChild(file, fake.url);
    await child.waitFor(/unit-start corpus:batch:2$/);
    child.proc.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    expect(child.lines.at(-1)).toMatch(/ stopped$/);
    // Closed cleanly: the write-ahead log was folded back into the database file.
    expect(fs.existsSync(`${file}-wal`)).toBe(false);
    const db = openDatabase(file);
    expect(db.prepare('SELECT state, lease_owner FROM jobs WHERE id = ?').get(jobId)).toEqual({ state: 'queued', lease_owner: null });
    const keys = db.prepare('SELECT key FROM job_checkpoints WHERE job_id = ?').pluck().all(jobId);
    expect(keys).toContain('corpus:batch:2');
    expect(keys).not.toContain('corpus:batch:3');
    db.close();
    const again = startChild(file, fake.url);
    expect(await again.exited).toBe(0);
    expect(again.lines.some((l) => / unit-start corpus:batch:2$/.test(l))).toBe(false);
    expect(again.lines.some((l) => l.endsWith(`finished ${jobId} succeeded`))).toBe(true);
    await fake.close();
  });
});
