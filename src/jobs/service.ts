/**
 * What the routes and the CLI call: enqueue, inspect, cancel, retry jobs and manage per-corpus schedules.
 * Same functions for both, so `evaporate job 3 --follow` and GET /jobs/3 read the same thing.
 */
import { Cron } from 'croner';
import type { Db } from '../store/database.js';
import { EvaporateError } from '../errors.js';
import { JobEvents, jobEvents } from './events.js';
import {
  enqueueJob,
  listJobs,
  requestCancel,
  requireJob,
  retryJob,
  toView,
  type EnqueueInput,
  type JobView,
  type ListFilter,
} from './store.js';

export interface ScheduleView {
  corpusId: number;
  cron: string;
  timezone: string | null;
  kind: string;
  params: unknown;
  enabled: boolean;
  watermark: number;
  lastJobId: number | null;
  lastRunAt: string | null;
  nextRunAt: string | null;
}

/** A job_schedules row as SQLite returns it. */
export interface ScheduleRow {
  corpus_id: number;
  cron: string;
  timezone: string | null;
  kind: string;
  params: string;
  enabled: number;
  watermark: number;
  last_job_id: number | null;
  last_run_at: string | null;
}

export interface HealthPoint {
  jobId: number | null;
  attribute: string;
  attributeId: number;
  runKind: string;
  documents: number;
  abstainShare: number;
  disagreeShare: number;
  unhealthyShare: number;
  baselineShare: number | null;
  drifted: boolean;
  resynthesized: boolean;
  createdAt: string;
}

/** Throws a 400 with croner's reason when the expression or time zone is not valid. */
export function validateCron(cron: string, timezone?: string | null): Date | null {
  // croner also takes a seconds field (and a year): six fields would run a job every second. Schedules are
  // the classic five fields (or a nickname such as @daily), so the finest one is once a minute.
  const fields = cron.trim().split(/\s+/);
  const nickname = fields.length === 1 && /^@(yearly|annually|monthly|weekly|daily|hourly)$/i.test(fields[0]);
  if (!nickname && fields.length !== 5) {
    throw new EvaporateError(
      'invalid_cron',
      `"${cron}" has ${fields.length} fields; a schedule takes the five fields minute hour day-of-month month day-of-week (e.g. "0 2 * * *") or @hourly/@daily/@weekly/@monthly/@yearly, so it runs at most once a minute.`,
      400,
    );
  }
  try {
    const c = new Cron(cron, { paused: true, timezone: timezone ?? undefined });
    const next = c.nextRun();
    c.stop();
    return next;
  } catch (e) {
    throw new EvaporateError(
      'invalid_cron',
      `"${cron}" is not a valid cron expression${timezone ? ` in time zone ${timezone}` : ''}: ${(e as Error).message}`,
      400,
    );
  }
}

export class JobService {
  constructor(
    readonly db: Db,
    readonly events: JobEvents = jobEvents,
  ) {}

  enqueue(input: EnqueueInput): JobView {
    const { job, created } = enqueueJob(this.db, input);
    if (created) this.events.emitQueued(job.id);
    return toView(job);
  }

  get(id: number): JobView {
    return toView(requireJob(this.db, id));
  }

  list(filter: ListFilter = {}): JobView[] {
    return listJobs(this.db, filter).map((r) => toView(r));
  }

  cancel(id: number): JobView {
    const row = requestCancel(this.db, id);
    this.events.emitCancel(id);
    this.events.emitProgress({ id, state: row.state, step: row.step, done: row.done, total: row.total });
    return toView(row);
  }

  retry(id: number): JobView {
    const row = retryJob(this.db, id);
    this.events.emitQueued(id);
    return toView(row);
  }

  private requireCorpus(corpusId: number): void {
    const ok = Number.isSafeInteger(corpusId) && this.db.prepare('SELECT 1 FROM corpora WHERE id = ?').get(corpusId);
    if (!ok) throw new EvaporateError('corpus_not_found', `There is no corpus with id ${corpusId}.`, 404);
  }

  private scheduleView(row: ScheduleRow): ScheduleView {
    const next = row.enabled ? validateCron(row.cron, row.timezone) : null;
    return {
      corpusId: row.corpus_id,
      cron: row.cron,
      timezone: row.timezone,
      kind: row.kind,
      params: JSON.parse(row.params),
      enabled: row.enabled === 1,
      watermark: row.watermark,
      lastJobId: row.last_job_id,
      lastRunAt: row.last_run_at,
      nextRunAt: next ? next.toISOString() : null,
    };
  }

  setSchedule(
    corpusId: number,
    input: { cron: string; timezone?: string | null; enabled?: boolean; params?: unknown; kind?: string },
  ): ScheduleView {
    this.requireCorpus(corpusId);
    validateCron(input.cron, input.timezone);
    this.db
      .prepare(
        // A new schedule starts after the documents a previous extraction already covered.
        `INSERT INTO job_schedules (corpus_id, cron, timezone, kind, params, enabled, watermark)
         VALUES (?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(e.document_id), 0) FROM extractions e
                                   JOIN documents d ON d.id = e.document_id WHERE d.corpus_id = ?))
         ON CONFLICT (corpus_id) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, kind = excluded.kind,
           params = excluded.params, enabled = excluded.enabled,
           updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')`,
      )
      .run(
        corpusId,
        input.cron,
        input.timezone ?? null,
        input.kind ?? 'nightly',
        JSON.stringify(input.params ?? {}),
        input.enabled === false ? 0 : 1,
        corpusId,
      );
    this.events.emit('schedules');
    return this.getSchedule(corpusId);
  }

  getSchedule(corpusId: number): ScheduleView {
    this.requireCorpus(corpusId);
    const row = this.db.prepare('SELECT * FROM job_schedules WHERE corpus_id = ?').get(corpusId) as ScheduleRow | undefined;
    if (!row) throw new EvaporateError('schedule_not_found', `Corpus ${corpusId} has no schedule.`, 404);
    return this.scheduleView(row);
  }

  listSchedules(): ScheduleView[] {
    return (this.db.prepare('SELECT * FROM job_schedules ORDER BY corpus_id').all() as ScheduleRow[]).map((r) =>
      this.scheduleView(r),
    );
  }

  deleteSchedule(corpusId: number): void {
    this.requireCorpus(corpusId);
    const n = this.db.prepare('DELETE FROM job_schedules WHERE corpus_id = ?').run(corpusId).changes;
    if (n === 0) throw new EvaporateError('schedule_not_found', `Corpus ${corpusId} has no schedule.`, 404);
    this.events.emit('schedules');
  }

  /** Per-run health of each attribute of a corpus, oldest first: how drift looks over time. */
  health(corpusId: number): HealthPoint[] {
    this.requireCorpus(corpusId);
    const rows = this.db
      .prepare(
        `SELECT h.*, a.name FROM attribute_health h JOIN attributes a ON a.id = h.attribute_id
         WHERE h.corpus_id = ? ORDER BY h.id`,
      )
      .all(corpusId) as Record<string, any>[];
    return rows.map((r) => ({
      jobId: r.job_id,
      attribute: r.name,
      attributeId: r.attribute_id,
      runKind: r.run_kind,
      documents: r.documents,
      abstainShare: r.abstain_share,
      disagreeShare: r.disagree_share,
      unhealthyShare: r.unhealthy_share,
      baselineShare: r.baseline_share,
      drifted: r.drifted === 1,
      resynthesized: r.resynthesized === 1,
      createdAt: r.created_at,
    }));
  }
}
