import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../src/store/database.js';
import { enqueueJob } from '../src/jobs/store.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function evaporate(args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(root, 'bin', 'evaporate.js'), ...args], { cwd: root });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('evaporate jobs', () => {
  it('lists, shows, cancels, retries, follows and schedules through the database', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-jobscli-')), 'e.db');
    const db = openDatabase(file);
    db.prepare("INSERT INTO corpora (name) VALUES ('books')").run();
    const a = enqueueJob(db, { kind: 'extract', corpusId: 1, params: { corpusId: 1 } }).job.id;
    const b = enqueueJob(db, { kind: 'extract', corpusId: 1, params: { corpusId: 1 } }).job.id;
    db.prepare("UPDATE jobs SET state = 'succeeded', step = 'materialize', done = 5, total = 5 WHERE id = ?").run(b);
    db.close();

    const list = await evaporate(['jobs', '--db', file]);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(`#${b} extract corpus 1 succeeded materialize 5/5 100%`);
    expect(list.stdout).toContain(`#${a} extract corpus 1 queued`);

    const cancel = await evaporate(['jobs', 'cancel', String(a), '--db', file]);
    expect(cancel.stdout).toContain(`#${a} extract corpus 1 cancelled`);
    const twice = await evaporate(['jobs', 'cancel', String(a), '--db', file]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('error (job_finished)');
    const retry = await evaporate(['jobs', 'retry', String(a), '--db', file]);
    expect(retry.stdout).toContain(`#${a} extract corpus 1 queued`);

    const follow = await evaporate(['job', String(b), '--follow', '--json', '--db', file]);
    expect(follow.code).toBe(0);
    expect(JSON.parse(follow.stdout)).toMatchObject({ id: b, state: 'succeeded', done: 5, total: 5 });
    expect(follow.stderr).toContain('5/5');
    const missing = await evaporate(['job', '99', '--db', file]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('error (job_not_found)');

    const bad = await evaporate(['jobs', 'schedule', '1', 'nightly please', '--db', file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('error (invalid_cron)');
    const set = await evaporate(['jobs', 'schedule', '1', '30 1 * * *', '--tz', 'UTC', '--db', file]);
    expect(set.stdout).toMatch(/corpus 1: "30 1 \* \* \*" \(UTC\) next \S+T01:30:00\.000Z watermark 0/);
    const off = await evaporate(['jobs', 'schedule', '1', '--off', '--db', file]);
    expect(off.stdout).toContain('schedule removed');
  });
});
