/**
 * SQL for durable jobs: rows, leases, checkpoints. Every state change is one statement or one
 * transaction, so two runner processes sharing the database cannot both own a job.
 */
import type { Db } from '../store/database.js';
import { EvaporateError } from '../errors.js';

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const TERMINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

export interface JobRow {
  id: number;
  kind: string;
  corpus_id: number | null;
  params: string;
  state: JobState;
  step: string | null;
  done: number;
  total: number;
  checkpoint: string | null;
  error_code: string | null;
  error_message: string | null;
  heartbeat_at: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  lease_owner: string | null;
  lease_expires_at: number | null;
  attempt: number;
  tokens: number;
  cost_usd: number;
  cancel_requested: number;
  step_started_at: number | null;
  step_done_at_start: number;
  dedupe_key: string | null;
  result: string | null;
}

/** What GET /jobs/:id, SSE and the CLI show. */
export interface JobView {
  id: number;
  kind: string;
  corpusId: number | null;
  params: unknown;
  state: JobState;
  step: string | null;
  done: number;
  total: number;
  tokens: number;
  costUsd: number;
  attempt: number;
  cancelRequested: boolean;
  /** Seconds left in the current step at the rate observed since it began; null when unknown. */
  etaSeconds: number | null;
  error: { code: string; message: string } | null;
  result: unknown;
  /** What went wrong in a job that still succeeded (an attribute that ended empty): the result's warnings. */
  warnings: { code: string; message: string }[];
  /** state, except that a succeeded job with warnings reads "succeeded_with_warnings". */
  outcome: JobState | 'succeeded_with_warnings';
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  heartbeatAt: string | null;
  leaseOwner: string | null;
}

const nowIso = () => new Date().toISOString();

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function estimateEta(row: JobRow, now = Date.now()): number | null {
  if (row.state !== 'running' || row.step_started_at === null || row.total <= 0) return null;
  const doneInStep = row.done - row.step_done_at_start;
  if (doneInStep <= 0 || row.done >= row.total) return row.done >= row.total ? 0 : null;
  const elapsed = Math.max(0, now - row.step_started_at) / 1000;
  return Math.round((elapsed / doneInStep) * (row.total - row.done) * 10) / 10;
}

/** Any job kind may report warnings as result.warnings: [{ code, message, ... }]. */
function warningsOf(result: unknown): JobView['warnings'] {
  const w = (result as { warnings?: unknown } | null)?.warnings;
  return Array.isArray(w) ? w.filter((x): x is { code: string; message: string } => typeof x?.code === 'string' && typeof x?.message === 'string') : [];
}

export function toView(row: JobRow, now = Date.now()): JobView {
  const result = parseJson(row.result);
  const warnings = warningsOf(result);
  return {
    id: row.id,
    kind: row.kind,
    corpusId: row.corpus_id,
    params: parseJson(row.params),
    state: row.state,
    step: row.step,
    done: row.done,
    total: row.total,
    tokens: row.tokens,
    costUsd: row.cost_usd,
    attempt: row.attempt,
    cancelRequested: row.cancel_requested === 1,
    etaSeconds: estimateEta(row, now),
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
    result,
    warnings,
    outcome: row.state === 'succeeded' && warnings.length ? 'succeeded_with_warnings' : row.state,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    heartbeatAt: row.heartbeat_at,
    leaseOwner: row.lease_owner,
  };
}

export interface EnqueueInput {
  kind: string;
  corpusId?: number | null;
  params?: unknown;
  /** Enqueueing the same key twice yields the first job (used by the scheduler across processes). */
  dedupeKey?: string;
}

export function enqueueJob(db: Db, input: EnqueueInput): { job: JobRow; created: boolean } {
  const info = db
    .prepare(
      `INSERT INTO jobs (kind, corpus_id, params, dedupe_key) VALUES (?, ?, ?, ?)
       ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING`,
    )
    .run(input.kind, input.corpusId ?? null, JSON.stringify(input.params ?? {}), input.dedupeKey ?? null);
  if (info.changes === 1) return { job: getJobRow(db, Number(info.lastInsertRowid))!, created: true };
  const existing = db.prepare('SELECT * FROM jobs WHERE dedupe_key = ?').get(input.dedupeKey) as JobRow;
  return { job: existing, created: false };
}

export function getJobRow(db: Db, id: number): JobRow | undefined {
  return db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
}

export function requireJob(db: Db, id: number): JobRow {
  const row = Number.isSafeInteger(id) ? getJobRow(db, id) : undefined;
  if (!row) throw new EvaporateError('job_not_found', `There is no job with id ${id}.`, 404);
  return row;
}

export interface ListFilter {
  state?: JobState;
  corpusId?: number;
  kind?: string;
  limit?: number;
}

export function listJobs(db: Db, filter: ListFilter = {}): JobRow[] {
  const where: string[] = [];
  const args: unknown[] = [];
  if (filter.state) (where.push('state = ?'), args.push(filter.state));
  if (filter.corpusId !== undefined) (where.push('corpus_id = ?'), args.push(filter.corpusId));
  if (filter.kind) (where.push('kind = ?'), args.push(filter.kind));
  args.push(Math.min(Math.max(filter.limit ?? 100, 1), 1000));
  return db
    .prepare(`SELECT * FROM jobs ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ?`)
    .all(...args) as JobRow[];
}

/**
 * Atomically takes the oldest queued job, or a running job whose lease lapsed (its runner died).
 * One UPDATE under SQLite's single writer: of two racing runners, only one sees the row still claimable.
 */
export function claimJob(db: Db, owner: string, kinds: string[], leaseMs: number, now = Date.now()): JobRow | undefined {
  if (kinds.length === 0) return undefined;
  const marks = kinds.map(() => '?').join(',');
  const claimable = `(state = 'queued' OR (state = 'running' AND lease_expires_at < @now AND cancel_requested = 0))`;
  return db
    .prepare(
      `UPDATE jobs SET state = 'running', lease_owner = @owner, lease_expires_at = @expires,
         attempt = attempt + 1, heartbeat_at = @iso, started_at = COALESCE(started_at, @iso)
       WHERE id = (SELECT id FROM jobs WHERE ${claimable} AND kind IN (${marks}) ORDER BY id LIMIT 1)
         AND ${claimable}
       RETURNING *`,
    )
    .get(...kinds, { owner, expires: now + leaseMs, now, iso: nowIso() }) as JobRow | undefined;
}

/**
 * A dead runner's job that was asked to cancel is not resumed, just closed; a job that keeps killing
 * its runner (claimed maxAttempts times) is failed instead of crashing every runner that takes it.
 */
export function settleAbandoned(db: Db, maxAttempts: number, now = Date.now()): number {
  const iso = nowIso();
  const a = db
    .prepare(
      `UPDATE jobs SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, finished_at = ?
       WHERE state = 'running' AND lease_expires_at < ? AND cancel_requested = 1`,
    )
    .run(iso, now).changes;
  const b = db
    .prepare(
      `UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL, finished_at = ?,
         error_code = 'job_abandoned', error_message = 'The job stopped its runner ' || attempt || ' times and was given up.'
       WHERE state = 'running' AND lease_expires_at < ? AND attempt >= ?`,
    )
    .run(iso, now, maxAttempts).changes;
  return a + b;
}

/** Renews the lease; returns undefined when this runner no longer owns the job (lease taken over). */
export function renewLease(
  db: Db,
  id: number,
  owner: string,
  leaseMs: number,
  now = Date.now(),
): { cancel_requested: number } | undefined {
  return db
    .prepare(
      `UPDATE jobs SET lease_expires_at = ?, heartbeat_at = ? WHERE id = ? AND lease_owner = ? AND state = 'running'
       RETURNING cancel_requested`,
    )
    .get(now + leaseMs, nowIso(), id, owner) as { cancel_requested: number } | undefined;
}

export function writeProgress(db: Db, id: number, owner: string, step: string, done: number, total: number): boolean {
  const now = Date.now();
  // A new step restarts the ETA clock; the same step keeps its start.
  return (
    db
      .prepare(
        `UPDATE jobs SET
           step_started_at = CASE WHEN step IS ? THEN COALESCE(step_started_at, ?) ELSE ? END,
           step_done_at_start = CASE WHEN step IS ? THEN step_done_at_start ELSE ? END,
           step = ?, done = ?, total = ?
         WHERE id = ? AND lease_owner = ? AND state = 'running'`,
      )
      .run(step, now, now, step, done, step, done, total, id, owner).changes === 1
  );
}

export function getCheckpoint(db: Db, jobId: number, key: string): { result: string } | undefined {
  return db.prepare('SELECT result FROM job_checkpoints WHERE job_id = ? AND key = ?').get(jobId, key) as
    | { result: string }
    | undefined;
}

export function finishJob(
  db: Db,
  id: number,
  owner: string,
  state: 'succeeded' | 'failed' | 'cancelled',
  extra: { result?: unknown; errorCode?: string; errorMessage?: string } = {},
): boolean {
  return (
    db
      .prepare(
        `UPDATE jobs SET state = ?, finished_at = ?, lease_owner = NULL, lease_expires_at = NULL,
           result = ?, error_code = ?, error_message = ?
         WHERE id = ? AND lease_owner = ? AND state = 'running'`,
      )
      .run(
        state,
        nowIso(),
        extra.result === undefined ? null : JSON.stringify(extra.result),
        extra.errorCode ?? null,
        extra.errorMessage ?? null,
        id,
        owner,
      ).changes === 1
  );
}

/** Hands a job back to the queue (shutdown): another runner resumes it from its checkpoints. */
export function releaseJob(db: Db, id: number, owner: string): boolean {
  return (
    db
      .prepare(
        `UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL
         WHERE id = ? AND lease_owner = ? AND state = 'running'`,
      )
      .run(id, owner).changes === 1
  );
}

/** Queued jobs stop at once; running ones are flagged and their runner aborts the handler. */
export function requestCancel(db: Db, id: number): JobRow {
  const row = requireJob(db, id);
  if (TERMINAL_STATES.includes(row.state)) {
    throw new EvaporateError('job_finished', `Job ${id} has already ${row.state === 'cancelled' ? 'been cancelled' : row.state}.`, 409);
  }
  db.prepare(
    `UPDATE jobs SET state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
       finished_at = CASE WHEN state = 'queued' THEN ? ELSE finished_at END,
       cancel_requested = 1
     WHERE id = ? AND state IN ('queued','running')`,
  ).run(nowIso(), id);
  return getJobRow(db, id)!;
}

/** Re-queues a failed or cancelled job; its completed checkpoints stay, so it resumes instead of restarting. */
export function retryJob(db: Db, id: number): JobRow {
  const row = requireJob(db, id);
  if (row.state !== 'failed' && row.state !== 'cancelled') {
    throw new EvaporateError('job_not_retryable', `Job ${id} is ${row.state}; only failed or cancelled jobs can be retried.`, 409);
  }
  db.prepare(
    `UPDATE jobs SET state = 'queued', cancel_requested = 0, error_code = NULL, error_message = NULL,
       finished_at = NULL, result = NULL, attempt = 0
     WHERE id = ? AND state IN ('failed','cancelled')`,
  ).run(id);
  return getJobRow(db, id)!;
}

export function countCheckpoints(db: Db, jobId: number): number {
  return db.prepare('SELECT count(*) FROM job_checkpoints WHERE job_id = ?').pluck().get(jobId) as number;
}

/**
 * Tokens and cost of a job's LLM calls, read from the LLM layer's ledger. The ledger's shape belongs to
 * src/llm, so this adapts to the tables present: the per-call usage log when it exists, else the cache rows.
 */
export function ledgerTotals(db: Db, jobId: number): { tokens: number; costUsd: number } {
  for (const table of ['llm_usage', 'llm_calls']) {
    const cols = new Set((db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name));
    if (!cols.has('job_id') || !cols.has('prompt_tokens') || !cols.has('completion_tokens')) continue;
    const cost = cols.has('cost_usd') ? 'cost_usd' : '0';
    // Cache hits cost nothing; count only what was paid for.
    const paid = cols.has('cached') ? 'AND cached = 0' : '';
    const r = db
      .prepare(
        `SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens, COALESCE(SUM(${cost}), 0) AS cost
         FROM ${table} WHERE job_id = ? ${paid}`,
      )
      .get(jobId) as { tokens: number; cost: number };
    return { tokens: r.tokens, costUsd: r.cost };
  }
  return { tokens: 0, costUsd: 0 };
}

export function refreshUsage(db: Db, jobId: number): void {
  const { tokens, costUsd } = ledgerTotals(db, jobId);
  db.prepare('UPDATE jobs SET tokens = ?, cost_usd = ? WHERE id = ?').run(tokens, costUsd, jobId);
}
