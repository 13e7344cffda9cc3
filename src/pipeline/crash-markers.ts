/**
 * Crash markers: a job whose unit of work killed its process is not resumed blindly.
 *
 * When a unit (a checkpoint key such as "batch:3" or "attribute:title:scoring") first runs sandbox functions,
 * a marker row is committed for it; a unit that ends in JavaScript (returned or threw) removes its marker. A
 * marker found when the unit starts again therefore means the process died inside it. Then:
 *  - the unit runs carefully: one function at a time, the marker naming the function running, so
 *  - a second death in careful mode names its culprit: that function is disabled for the rest of the job
 *    (its calls answer `disabled`) and the unit goes on without it;
 *  - past `maxCrashes` deaths in one unit, or a death in careful mode while no function ran, the job fails
 *    with `unit_crashed` and a sentence naming the unit: never a crash loop.
 * The marker lives in its own table, written outside the checkpoint transaction so it survives SIGKILL.
 * (A runner that lost its lease while alive leaves a marker too; the cost is one careful rerun of that unit.)
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type Database from 'better-sqlite3';
import { EvaporateError } from '../errors.js';
import type { JobContext } from '../jobs/types.js';
import type { CallOutcome, ExtractionFunction, RunOptions, Sandbox, SandboxDocument } from '../sandbox/types.js';

interface UnitState {
  key: string;
  /** Set once this run of the unit has read (and taken over) the marker. */
  careful?: boolean;
}

interface MarkerRow {
  crashes: number;
  careful: number;
  current: string | null;
}

// Created here rather than in a numbered migration: the table belongs to this module alone and is only
// ever read through it.
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS job_unit_markers (
    job_id   INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    crashes  INTEGER NOT NULL DEFAULT 0,
    careful  INTEGER NOT NULL DEFAULT 0,
    current  TEXT,
    PRIMARY KEY (job_id, key)
  );
  CREATE TABLE IF NOT EXISTS job_disabled_functions (
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    function_id TEXT NOT NULL,
    unit        TEXT NOT NULL,
    PRIMARY KEY (job_id, function_id)
  );`;

export interface CrashGuardOptions {
  /** Process deaths tolerated inside one unit before the job fails (each careful one disables a function). */
  maxCrashes: number;
}

/**
 * Wraps a job's context and sandbox: every checkpointed unit that runs functions through the returned
 * sandbox is guarded by a marker. Add it once at the top of a handler; nothing else changes.
 */
export function guardAgainstCrashes(
  db: Database.Database,
  ctx: JobContext,
  sandbox: Sandbox,
  options: CrashGuardOptions = { maxCrashes: 3 },
): { ctx: JobContext; sandbox: Sandbox } {
  // Outside the job runner (CLI one-shot, tests) there is no job row to hang markers on, and no restart either.
  if (!db.prepare('SELECT 1 FROM jobs WHERE id = ?').get(ctx.jobId)) return { ctx, sandbox };
  db.exec(SCHEMA);
  const units = new AsyncLocalStorage<UnitState>();
  const jobId = ctx.jobId;
  const read = db.prepare<[number, string], MarkerRow>('SELECT crashes, careful, current FROM job_unit_markers WHERE job_id = ? AND key = ?');
  const write = db.prepare(
    `INSERT INTO job_unit_markers (job_id, key, crashes, careful, current) VALUES (?, ?, ?, ?, NULL)
     ON CONFLICT (job_id, key) DO UPDATE SET crashes = excluded.crashes, careful = excluded.careful, current = NULL`,
  );
  const setCurrent = db.prepare('UPDATE job_unit_markers SET current = ? WHERE job_id = ? AND key = ?');
  const clear = db.prepare('DELETE FROM job_unit_markers WHERE job_id = ? AND key = ?');
  const disable = db.prepare('INSERT OR IGNORE INTO job_disabled_functions (job_id, function_id, unit) VALUES (?, ?, ?)');
  const disabledRows = db.prepare<[number], { function_id: string; unit: string }>('SELECT function_id, unit FROM job_disabled_functions WHERE job_id = ?');

  /** First sandbox use in this run of the unit: take over the marker and decide how to run. */
  const enter = (unit: UnitState): void => {
    if (unit.careful !== undefined) return;
    const marker = read.get(jobId, unit.key);
    if (!marker) {
      write.run(jobId, unit.key, 0, 0);
      unit.careful = false;
      return;
    }
    const crashes = marker.crashes + 1;
    if (marker.current !== null) disable.run(jobId, marker.current, unit.key);
    if (crashes > options.maxCrashes || (marker.careful && marker.current === null)) {
      throw new EvaporateError(
        'unit_crashed',
        `The job's process died ${crashes} times while running "${unit.key}"` +
          (marker.current === null ? ', with no single extraction function to blame' : '') +
          '; the job was stopped instead of being restarted again.',
        500,
        { unit: unit.key, crashes },
      );
    }
    write.run(jobId, unit.key, crashes, 1);
    unit.careful = true;
  };

  const disabledOutcome = (unit: string): CallOutcome => ({
    ok: false,
    error: { code: 'disabled', message: `The function was disabled for this job: the process died while it ran (in "${unit}").` },
  });

  const guarded: Sandbox = {
    async run(functions: ExtractionFunction[], documents: SandboxDocument[], runOptions?: RunOptions) {
      const unit = units.getStore();
      if (unit) enter(unit);
      // The job is the scope of its functions' vm contexts: shared by its units, never with another job.
      runOptions = { ...runOptions, scope: runOptions?.scope ?? `job:${jobId}` };
      const disabled = new Map(disabledRows.all(jobId).map((r) => [r.function_id, r.unit]));
      const out: CallOutcome[][] = functions.map((f) =>
        disabled.has(String(f.id)) ? documents.map(() => disabledOutcome(disabled.get(String(f.id))!)) : [],
      );
      const live = functions.map((f, i) => ({ f, i })).filter(({ f }) => !disabled.has(String(f.id)));
      if (live.length === 0) return out;
      if (!unit?.careful) {
        const got = await sandbox.run(live.map((l) => l.f), documents, runOptions);
        live.forEach((l, j) => (out[l.i] = got[j]));
        return out;
      }
      // Careful: one function at a time, the marker naming it, so a death now has exactly one suspect.
      for (const l of live) {
        setCurrent.run(String(l.f.id), jobId, unit.key);
        out[l.i] = (await sandbox.run([l.f], documents, runOptions))[0];
      }
      setCurrent.run(null, jobId, unit.key);
      return out;
    },
    close: () => sandbox.close(),
  };

  const guardedCtx: JobContext = {
    ...ctx,
    checkpoint: (key, fn, opts) =>
      ctx.checkpoint(
        key,
        () => {
          const unit: UnitState = { key };
          return units.run(unit, async () => {
            try {
              return await fn();
            } finally {
              // The unit ended in JavaScript (done or failed): no crash to remember.
              if (unit.careful !== undefined) clear.run(jobId, key);
            }
          });
        },
        opts,
      ),
  };
  return { ctx: guardedCtx, sandbox: guarded };
}

/** The same for a handler's dependencies: returns the guarded context and a copy of deps with the guarded sandbox. */
export function withCrashGuard<D extends { sandbox: Sandbox }>(
  db: Database.Database,
  ctx: JobContext,
  deps: D,
  options?: CrashGuardOptions,
): { ctx: JobContext; deps: D } {
  const guarded = guardAgainstCrashes(db, ctx, deps.sandbox, options);
  return { ctx: guarded.ctx, deps: { ...deps, sandbox: guarded.sandbox } };
}
