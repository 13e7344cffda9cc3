import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/store/database.js';
import { enqueueJob } from '../src/jobs/store.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';
import { demoAnswers, seedCorpus } from './jobs-demo-handler.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const childScript = path.join(root, 'test', 'jobs-child-runner.ts');

interface Child {
  proc: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  waitFor(pattern: RegExp): Promise<string>;
}

function startChild(dbPath: string, llmUrl: string): Child {
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
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  let buf = '';
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lines.push(line);
      for (const w of waiters.splice(0)) {
        if (w.pattern.test(line)) w.resolve(line);
        else waiters.push(w);
      }
    }
  });
  const exited = new Promise<number | null>((resolve) =>
    proc.on('close', (code) => {
      if (code !== 0 && code !== null) console.error(stderr);
      resolve(code);
    }),
  );
  return {
    proc,
    lines,
    exited,
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const hit = lines.find((l) => pattern.test(l));
        if (hit) return resolve(hit);
        waiters.push({ pattern, resolve });
        void exited.then(() => setTimeout(() => reject(new Error(`child exited before ${pattern}: ${stderr}`)), 50));
      }),
  };
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
  for (const killAt of [['schema'], ['attribute:price:synthesis'], ['corpus:batch:2', 'corpus:batch:4'], ['materialize']]) {
    it(`resumes after SIGKILL at ${killAt.join(' then ')} with an identical table and no repeated call`, async () => {
      const before = fake.chatRequests.length;
      const { file, corpusId, jobId } = setup();
      for (const key of killAt) {
        const child = startChild(file, fake.url);
        await child.waitFor(new RegExp(`unit-start ${key}$`));
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
      db.close();
      // Kills land before a unit's LLM call, so the model is asked exactly what an uninterrupted run asks.
      const prompts = fake.chatRequests.slice(before).map((r) => r.prompt);
      expect(prompts.length).toBe(referenceCalls);
      expect(new Set(prompts).size).toBe(prompts.length);
    });
  }
});
