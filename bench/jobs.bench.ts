/**
 * Cost of durability: how long a checkpointed unit takes with nothing inside it (the SQLite transaction
 * with the lease fence and the checkpoint row, on a file database in WAL mode), how long a resumed job takes
 * to skip its finished units, and claim latency. Decides how small a unit of work can be before
 * checkpointing dominates: at about a tenth of a millisecond per unit, per-batch checkpoints of a few dozen
 * documents cost nothing next to running functions over them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchResult } from './lib.js';
import { loadSettings } from '../src/config.js';
import { openDatabase } from '../src/store/database.js';
import { JobRunner } from '../src/jobs/runner.js';
import { JobEvents } from '../src/jobs/events.js';
import { claimJob, enqueueJob, releaseJob } from '../src/jobs/store.js';
import type { JobHandler } from '../src/jobs/types.js';

export default async function run(): Promise<BenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-jobs-bench-'));
  const db = openDatabase(path.join(dir, 'bench.db'));
  const settings = loadSettings().jobs;
  const UNITS = 5000;
  const handler: JobHandler<{ units: number }> = async (p, ctx) => {
    for (let i = 0; i < p.units; i++) {
      await ctx.checkpoint(`unit:${i}`, async () => ({ i, values: [`v${i}`, null] }), {
        commit: (r) => db.prepare('INSERT INTO corpora (name) VALUES (?)').run(`c${r.i}`),
      });
      ctx.progress('units', i + 1, p.units);
    }
    return null;
  };
  const runner = new JobRunner({ db, settings, handlers: { bench: handler }, events: new JobEvents(), owner: 'bench' });

  const job = enqueueJob(db, { kind: 'bench', params: { units: UNITS } }).job.id;
  let t = performance.now();
  await runner.runOnce();
  const fresh = performance.now() - t;

  // Resume: the same job with every unit done is pure skipping.
  db.prepare("UPDATE jobs SET state = 'queued', result = NULL WHERE id = ?").run(job);
  t = performance.now();
  await runner.runOnce();
  const resumed = performance.now() - t;

  const CLAIMS = 2000;
  for (let i = 0; i < CLAIMS; i++) enqueueJob(db, { kind: 'claim', params: {} });
  t = performance.now();
  for (let i = 0; i < CLAIMS; i++) {
    const row = claimJob(db, 'bench', ['claim'], 30_000)!;
    releaseJob(db, row.id, 'bench');
    db.prepare("UPDATE jobs SET state = 'succeeded' WHERE id = ?").run(row.id);
  }
  const claim = performance.now() - t;
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });

  const perUnit = (fresh / UNITS) * 1000;
  return {
    name: 'jobs',
    rows: [
      { measure: 'checkpointed unit (fenced commit + row)', us_per_op: perUnit, ops: UNITS },
      { measure: 'resumed unit skipped', us_per_op: (resumed / UNITS) * 1000, ops: UNITS },
      { measure: 'claim + release', us_per_op: (claim / CLAIMS) * 1000, ops: CLAIMS },
    ],
    targets: { 'checkpoint overhead < 1 ms per unit': perUnit < 1000 },
    notes: ['File database, WAL, synchronous=NORMAL; the unit itself does nothing, so this is pure durability cost.'],
  };
}
