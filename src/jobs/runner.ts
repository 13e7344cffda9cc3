/**
 * Executes jobs from the jobs table. A runner claims a job with a lease, renews it with a heartbeat,
 * and gives handlers a JobContext whose checkpoints are fenced by that lease: a runner that lost its
 * lease (paused too long, taken over) can no longer commit anything for the job.
 */
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Settings } from '../config.js';
import type { Db } from '../store/database.js';
import { isEvaporateError } from '../errors.js';
import type { CheckpointOptions, JobContext, JobHandler } from './types.js';
import { JobEvents, jobEvents } from './events.js';
import {
  claimJob,
  finishJob,
  getCheckpoint,
  getJobRow,
  refreshUsage,
  releaseJob,
  renewLease,
  settleAbandoned,
  writeProgress,
  type JobRow,
} from './store.js';

export type StopReason = 'cancelled' | 'shutdown' | 'lease_lost';

export class JobAbortError extends Error {
  constructor(readonly reason: StopReason) {
    super(`Job stopped: ${reason}.`);
    this.name = 'AbortError';
  }
}

export interface RunnerOptions {
  db: Db;
  settings: Settings['jobs'];
  handlers: Record<string, JobHandler<any, any>>;
  events?: JobEvents;
  /** Unique per process; shows in jobs.lease_owner. */
  owner?: string;
  /** Jobs run at once by this runner (each is mostly waiting on the LLM or the sandbox pool). */
  concurrency?: number;
}

interface Active {
  row: JobRow;
  controller: AbortController;
  done: Promise<void>;
}

export class JobRunner {
  readonly owner: string;
  private readonly db: Db;
  private readonly settings: Settings['jobs'];
  private readonly handlers: Record<string, JobHandler<any, any>>;
  private readonly events: JobEvents;
  private readonly concurrency: number;
  private readonly active = new Map<number, Active>();
  private stopping = false;
  private loopPromise: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(options: RunnerOptions) {
    this.db = options.db;
    this.settings = options.settings;
    this.handlers = options.handlers;
    this.events = options.events ?? jobEvents;
    this.owner = options.owner ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.concurrency = Math.max(1, options.concurrency ?? 1);
  }

  /** Starts claiming work in the background; recovery of jobs orphaned by a dead process is the first claim. */
  start(): void {
    if (this.loopPromise) return;
    this.unsubscribe.push(
      this.events.onQueued(() => this.wake()),
      this.events.onCancel((id) => this.checkCancel(id)),
    );
    this.loopPromise = this.loop();
  }

  get activeJobIds(): number[] {
    return [...this.active.keys()];
  }

  /** The job kinds this runner claims. */
  kinds(): string[] {
    return Object.keys(this.handlers);
  }

  /**
   * Graceful stop: claim nothing new, abort handlers (they stop at their next checkpoint, having
   * committed the unit in hand), hand their jobs back to the queue, and wait for them to settle.
   */
  async stop(graceMs = this.settings.leaseMs): Promise<void> {
    this.stopping = true;
    this.wake();
    for (const a of this.active.values()) a.controller.abort(new JobAbortError('shutdown'));
    const settled = Promise.all([...this.active.values()].map((a) => a.done));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settled, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    // A handler that ignored the signal is released anyway; the lease fence keeps it from committing.
    for (const a of this.active.values()) releaseJob(this.db, a.row.id, this.owner);
    await this.loopPromise;
    for (const u of this.unsubscribe.splice(0)) u();
  }

  /** Claims and runs at most one job to completion; for tests and one-shot CLI use. */
  async runOnce(): Promise<JobRow | undefined> {
    if (this.stopping) return undefined;
    settleAbandoned(this.db, this.settings.maxAttempts);
    const row = claimJob(this.db, this.owner, Object.keys(this.handlers), this.settings.leaseMs);
    if (!row) return undefined;
    await this.execute(row);
    return getJobRow(this.db, row.id);
  }

  wake(): void {
    this.wakeUp?.();
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      let claimed = false;
      if (this.active.size < this.concurrency) {
        try {
          settleAbandoned(this.db, this.settings.maxAttempts);
          const row = claimJob(this.db, this.owner, Object.keys(this.handlers), this.settings.leaseMs);
          if (row) {
            claimed = true;
            // A failure here is in the bookkeeping itself (the handler's errors are recorded on the row).
            void this.execute(row)
              .catch((e) => console.error(`job ${row.id}: runner error`, e))
              .finally(() => this.wake());
          }
        } catch (e) {
          // A locked database (another writer past busy_timeout) is transient: try again next poll.
          if (!(e instanceof Error && /SQLITE_BUSY|locked/i.test(e.message))) throw e;
        }
      }
      if (claimed) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.settings.pollMs);
        this.wakeUp = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  private checkCancel(id: number): void {
    const a = this.active.get(id);
    if (!a) return;
    const row = getJobRow(this.db, id);
    if (row?.cancel_requested) a.controller.abort(new JobAbortError('cancelled'));
  }

  private emit(id: number): void {
    const row = getJobRow(this.db, id);
    if (row) this.events.emitProgress({ id, state: row.state, step: row.step, done: row.done, total: row.total });
  }

  private async execute(row: JobRow): Promise<void> {
    const { db, owner } = this;
    const controller = new AbortController();
    let settled!: () => void;
    const entry: Active = { row, controller, done: new Promise<void>((r) => (settled = r)) };
    this.active.set(row.id, entry);
    const abort = (reason: StopReason) => {
      if (!controller.signal.aborted) controller.abort(new JobAbortError(reason));
    };
    if (row.cancel_requested) abort('cancelled');

    const heartbeat = setInterval(() => {
      try {
        const lease = renewLease(db, row.id, owner, this.settings.leaseMs);
        if (!lease) return abort('lease_lost');
        if (lease.cancel_requested) abort('cancelled');
        refreshUsage(db, row.id);
      } catch {
        // Busy database: the lease is long enough to survive a missed beat.
      }
    }, this.settings.heartbeatMs);
    heartbeat.unref();

    let lastWrite = 0;
    let lastStep: string | null = row.step;
    const ctx: JobContext = {
      jobId: row.id,
      signal: controller.signal,
      progress: (step, done, total) => {
        const now = Date.now();
        this.events.emitProgress({ id: row.id, state: 'running', step, done, total });
        if (step !== lastStep || done >= total || now - lastWrite >= this.settings.progressWriteMs) {
          lastWrite = now;
          lastStep = step;
          if (!writeProgress(db, row.id, owner, step, done, total)) abort('lease_lost');
        }
      },
      checkpoint: <T>(key: string, fn: () => Promise<T>, options?: CheckpointOptions<T>) =>
        this.checkpoint(row, controller.signal, key, fn, options),
    };

    let params: unknown;
    try {
      params = JSON.parse(row.params);
    } catch {
      params = {};
    }
    this.emit(row.id);
    try {
      const result = await this.handlers[row.kind]!(params, ctx);
      if (controller.signal.aborted) throw controller.signal.reason;
      refreshUsage(db, row.id);
      finishJob(db, row.id, owner, 'succeeded', { result: result ?? null });
    } catch (error) {
      const reason = controller.signal.aborted
        ? (controller.signal.reason as JobAbortError).reason
        : error instanceof JobAbortError
          ? error.reason
          : undefined;
      try {
        refreshUsage(db, row.id);
      } catch {
        /* usage is advisory */
      }
      if (reason === 'cancelled') {
        finishJob(db, row.id, owner, 'cancelled', { errorCode: 'job_cancelled', errorMessage: 'The job was cancelled.' });
      } else if (reason === 'shutdown') {
        releaseJob(db, row.id, owner);
      } else if (reason === 'lease_lost') {
        // Another runner owns the job now; it resumes from the checkpoints this one committed.
      } else {
        const code = isEvaporateError(error) ? error.code : 'job_failed';
        const message = error instanceof Error ? error.message : String(error);
        finishJob(db, row.id, owner, 'failed', { errorCode: code, errorMessage: message });
      }
    } finally {
      clearInterval(heartbeat);
      this.active.delete(row.id);
      this.emit(row.id);
      settled();
    }
  }

  private async checkpoint<T>(
    row: JobRow,
    signal: AbortSignal,
    key: string,
    fn: () => Promise<T>,
    options: CheckpointOptions<T> | undefined,
  ): Promise<T> {
    const stored = getCheckpoint(this.db, row.id, key);
    if (stored) return JSON.parse(stored.result) as T;
    if (signal.aborted) throw signal.reason;
    const fresh = await fn();
    const json = JSON.stringify(fresh === undefined ? null : fresh);
    const result = JSON.parse(json) as T;
    const commit = this.db.transaction(() => {
      // The fence: only the lease holder may record a unit, so a unit is committed once even when a
      // stalled runner wakes up after another one took its job over.
      const lease = renewLease(this.db, row.id, this.owner, this.settings.leaseMs);
      if (!lease) throw new JobAbortError('lease_lost');
      const inserted = this.db
        .prepare(
          `INSERT INTO job_checkpoints (job_id, key, result, attempt) VALUES (?, ?, ?, ?)
           ON CONFLICT (job_id, key) DO NOTHING`,
        )
        .run(row.id, key, json, row.attempt).changes;
      if (inserted === 1) options?.commit?.(result);
      return inserted === 1;
    });
    const inserted = commit();
    if (!inserted) return JSON.parse(getCheckpoint(this.db, row.id, key)!.result) as T;
    if (signal.aborted) throw signal.reason;
    return result;
  }
}
