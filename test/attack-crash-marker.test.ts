/**
 * Finding 1's second half: a job whose unit killed its process must not be resumed blindly. The child runner
 * is SIGKILLed while a sandbox function runs (twice); the third start disables the function the marker names
 * and finishes the job. With a crash budget of one, the job fails with unit_crashed instead of looping.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../src/store/database.js';
import { enqueueJob } from '../src/jobs/store.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const script = path.join(root, 'test', 'attack-child-crash.ts');

function start(dbPath: string, env: Record<string, string> = {}) {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, dbPath], {
    cwd: root,
    env: { ...process.env, EVAPORATE_JOB_LEASE_MS: '1000', EVAPORATE_JOB_HEARTBEAT_MS: '200', EVAPORATE_JOB_POLL_MS: '100', EVAPORATE_JOB_MAX_ATTEMPTS: '20', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  return { proc, exited, stderr: () => stderr };
}

/** Polls the database (its own connection) until the marker of batch:0 matches, then SIGKILLs the runner. */
async function killWhen(dbPath: string, c: ReturnType<typeof start>, match: (m: { careful: number; current: string | null }) => boolean) {
  const db = openDatabase(dbPath);
  try {
    for (let i = 0; i < 600; i++) {
      const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'job_unit_markers'").get();
      const m = exists ? (db.prepare("SELECT careful, current FROM job_unit_markers WHERE key = 'batch:0'").get() as { careful: number; current: string | null } | undefined) : undefined;
      if (m && match(m)) {
        c.proc.kill('SIGKILL');
        await c.exited;
        return;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`marker never matched: ${c.stderr().slice(-1500)}`);
  } finally {
    db.close();
  }
}

function fresh(): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-crash-')), 'c.db');
  const db = openDatabase(file);
  enqueueJob(db, { kind: 'crashy', params: {} });
  db.close();
  return file;
}

describe('crash markers', () => {
  it('after two deaths in one unit, the function the marker names is disabled and the job finishes', async () => {
    const file = fresh();
    let c = start(file);
    await killWhen(file, c, (m) => m.careful === 0);
    c = start(file);
    await killWhen(file, c, (m) => m.careful === 1 && m.current === 'slow');
    c = start(file);
    expect(await c.exited, c.stderr()).toBe(0);
    const db = openDatabase(file);
    const job = db.prepare('SELECT state, result FROM jobs WHERE id = 1').get() as { state: string; result: string };
    expect(job.state).toBe('succeeded');
    const result = JSON.parse(job.result) as Record<string, (string | null)[]>;
    expect(result.slow).toEqual(Array(10).fill('disabled'));
    expect(result.first).toEqual(Array(10).fill('doc'));
    expect(result.last).toEqual(Array.from({ length: 10 }, (_, i) => String(i).padStart(2, '0')));
    expect(db.prepare('SELECT function_id FROM job_disabled_functions').pluck().all()).toEqual(['slow']);
    expect(db.prepare('SELECT count(*) FROM job_unit_markers').pluck().get()).toBe(0);
    db.close();
  }, 120_000);

  it('past the crash budget the job fails with unit_crashed, and the runner exits instead of looping', async () => {
    const file = fresh();
    const env = { EVAPORATE_JOB_UNIT_MAX_CRASHES: '1' };
    let c = start(file, env);
    await killWhen(file, c, (m) => m.careful === 0);
    c = start(file, env);
    await killWhen(file, c, (m) => m.careful === 1 && m.current === 'slow');
    c = start(file, env);
    expect(await c.exited, c.stderr()).toBe(0);
    const db = openDatabase(file);
    const job = db.prepare('SELECT state, error_code, error_message FROM jobs WHERE id = 1').get() as Record<string, string>;
    expect(job.state).toBe('failed');
    expect(job.error_code).toBe('unit_crashed');
    expect(job.error_message).toContain('batch:0');
    db.close();
  }, 120_000);
});
