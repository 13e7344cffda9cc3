/**
 * The real extract job (SWDE pages, scripted fake model, real sandbox) killed with SIGKILL inside synthesis,
 * the corpus pass and materialization: after a restart the table equals an uninterrupted run's, and the
 * ledger shows no paid call twice.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { openDatabase } from '../src/store/database.js';
import { ingestFiles } from '../src/ingest/ingest.js';
import { enqueueJob } from '../src/jobs/store.js';
import { parseExtractRequest, EXTRACT_JOB_KIND } from '../src/pipeline/service.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';
import { scriptModel, swdeDir } from './pipeline-script.js';
import { watchLines } from './child-lines.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const script = path.join(root, 'test', 'jobs-child-extract.ts');
const PAGES = 16;
const ATTRS = ['title', 'isbn_13', 'publisher'];

function child(dbPath: string, llmUrl: string, env: Record<string, string> = {}) {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, dbPath, llmUrl], {
    cwd: root,
    env: { ...process.env, EVAPORATE_JOB_LEASE_MS: '1500', EVAPORATE_JOB_HEARTBEAT_MS: '300', EVAPORATE_JOB_POLL_MS: '100', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return watchLines(proc);
}

describe('the extract job survives SIGKILL', () => {
  let fake: FakeOpenAI;
  let seed: string;
  let corpusId: number;
  let reference: { rows: unknown[]; provenance: unknown[]; paid: number };

  const fresh = () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-xjob-')), 'e.db');
    fs.copyFileSync(seed, file);
    return file;
  };
  const outcome = (file: string, jobId: number) => {
    const db = openDatabase(file);
    const job = db.prepare('SELECT state, result FROM jobs WHERE id = ?').get(jobId) as { state: string; result: string };
    expect(job.state).toBe('succeeded');
    const table = JSON.parse(job.result).table as string;
    const paidHashes = db
      .prepare("SELECT request_hash FROM llm_usage WHERE job_id = ? AND cached = 0 AND status = 'ok'")
      .pluck()
      .all(jobId) as string[];
    expect(new Set(paidHashes).size).toBe(paidHashes.length);
    const r = {
      rows: db.prepare(`SELECT * FROM "${table}" ORDER BY _document_id`).all(),
      // Function row ids depend on the order parallel synthesis answers arrive; their sources do not.
      provenance: (db.prepare(`SELECT * FROM "${table}__provenance" ORDER BY _document_id, attribute`).all() as Record<string, unknown>[]).map(
        (p) => ({
          ...p,
          functions: ((JSON.parse(String(p.functions ?? '[]')) as string[]) ?? [])
            .map((id) => db.prepare('SELECT source_hash FROM functions WHERE id = ?').pluck().get(Number(id)))
            .sort(),
        }),
      ),
      paid: paidHashes.length,
    };
    db.close();
    return r;
  };

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    scriptModel(fake, {});
    fake.setLatency(20);
    seed = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-xseed-')), 'seed.db');
    const db = openDatabase(seed);
    corpusId = Number(db.prepare("INSERT INTO corpora (name) VALUES ('christianbook')").run().lastInsertRowid);
    const files = Array.from({ length: PAGES }, (_, i) => {
      const filename = `${String(i).padStart(4, '0')}.htm`;
      return { filename, bytes: fs.readFileSync(path.join(swdeDir, 'pages', filename)) };
    });
    await ingestFiles(db, corpusId, files, { settings: loadSettings().ingest });
    const { params } = parseExtractRequest(corpusId, { mode: 'closed', attributes: ATTRS, candidates: 8 });
    enqueueJob(db, { kind: EXTRACT_JOB_KIND, corpusId, params });
    db.close();

    const file = fresh();
    const c = child(file, fake.url);
    expect(await c.exited, c.stderr()).toBe(0);
    reference = outcome(file, 1);
  }, 240_000);
  afterAll(async () => fake?.close());

  it('an uninterrupted run fills the table', () => {
    expect(reference.rows).toHaveLength(PAGES);
    expect(reference.paid).toBeGreaterThan(ATTRS.length);
  });

  for (const killAt of [['attribute:publisher:synthesis'], ['batch:0'], ['materialize']]) {
    it(`resumes after SIGKILL at ${killAt.join(', ')}: same table, no call paid twice`, async () => {
      const file = fresh();
      for (const key of killAt) {
        const c = child(file, fake.url);
        await c.waitFor(new RegExp(`unit-start ${key}$`));
        c.proc.kill('SIGKILL');
        await c.exited;
      }
      const last = child(file, fake.url);
      expect(await last.exited, last.stderr()).toBe(0);
      const got = outcome(file, 1);
      expect(got.rows).toEqual(reference.rows);
      expect(got.provenance).toEqual(reference.provenance);
      expect(got.paid).toBe(reference.paid);
    }, 240_000);
  }

  it('cuts the corpus pass by bytes and resumes inside it on the checkpointed cut, even under another byte budget', async () => {
    // The pages carry 100-170 KB of HTML and text each: 600 KB makes batches of 2 to 5 of them.
    const file = fresh();
    const first = child(file, fake.url, { EVAPORATE_BATCH_BYTES: '600000' });
    await first.waitFor(/unit-start batch:2$/);
    first.proc.kill('SIGKILL');
    await first.exited;
    // The resume would cut 1.5 MB batches if it cut again; batch:0 and batch:1 must stay done.
    const last = child(file, fake.url, { EVAPORATE_BATCH_BYTES: '1500000' });
    expect(await last.exited, last.stderr()).toBe(0);
    expect(last.lines.filter((l) => / unit-start (batch:[01]|batches)$/.test(l))).toEqual([]);
    expect(last.lines.some((l) => / unit-start batch:2$/.test(l))).toBe(true);

    const db = openDatabase(file);
    const stored = (key: string) => JSON.parse(db.prepare('SELECT result FROM job_checkpoints WHERE job_id = 1 AND key = ?').pluck().get(key) as string);
    const cut = stored('batches') as number[];
    const ids = stored('documents') as number[];
    const bytes = db.prepare("SELECT octet_length(text) + length(raw) FROM documents WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id").pluck().all(JSON.stringify(ids)) as number[];
    expect(cut.length).toBeGreaterThan(3);
    let at = 0;
    for (const [b, n] of cut.entries()) {
      const batch = stored(`batch:${b}`) as Record<string, { documentIds: number[] }>;
      expect(batch.title.documentIds).toEqual(ids.slice(at, at + n));
      const size = bytes.slice(at, at + n).reduce((x, y) => x + y, 0);
      if (n > 1) expect(size).toBeLessThanOrEqual(600_000);
      at += n;
    }
    db.close();
    expect(at).toBe(PAGES);
    const got = outcome(file, 1);
    expect(got.rows).toEqual(reference.rows);
    expect(got.provenance).toEqual(reference.provenance);
    expect(got.paid).toBe(reference.paid);
  }, 240_000);
});
