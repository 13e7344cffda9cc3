/**
 * Turns per-corpus cron schedules into queued jobs. Every runner process may run a scheduler: the job's
 * dedupe key (kind, corpus, tick) makes a tick enqueue one job however many schedulers fire on it, and a
 * corpus whose previous run is still open gets no second one.
 */
import { Cron } from 'croner';
import type { Db } from '../store/database.js';
import { JobEvents, jobEvents } from './events.js';
import { enqueueJob, type JobRow } from './store.js';
import { validateCron, type ScheduleRow } from './service.js';


export class JobScheduler {
  private crons = new Map<number, { cron: Cron; key: string }>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly db: Db,
    private readonly events: JobEvents = jobEvents,
  ) {}

  start(): void {
    const reload = () => this.reload();
    this.events.on('schedules', reload);
    this.unsubscribe = () => this.events.off('schedules', reload);
    this.reload();
  }

  stop(): void {
    this.unsubscribe?.();
    for (const { cron } of this.crons.values()) cron.stop();
    this.crons.clear();
  }

  /** Re-reads the schedules table (after a change through the API, or from another process on restart). */
  reload(): void {
    const rows = this.db.prepare('SELECT * FROM job_schedules WHERE enabled = 1').all() as ScheduleRow[];
    const seen = new Set<number>();
    for (const row of rows) {
      seen.add(row.corpus_id);
      const key = `${row.cron}|${row.timezone ?? ''}|${row.kind}|${row.params}`;
      const existing = this.crons.get(row.corpus_id);
      if (existing?.key === key) continue;
      existing?.cron.stop();
      try {
        validateCron(row.cron, row.timezone);
        // interval: never two runs less than a minute apart, whatever the expression says.
        const cron = new Cron(row.cron, { timezone: row.timezone ?? undefined, protect: true, interval: 60 }, (self: Cron) => {
          this.fire(row, self.currentRun() ?? new Date());
        });
        this.crons.set(row.corpus_id, { cron, key });
      } catch {
        // Validated on the way in; a row edited by hand into nonsense is skipped rather than stopping the rest.
      }
    }
    for (const [corpusId, { cron }] of this.crons) {
      if (!seen.has(corpusId)) {
        cron.stop();
        this.crons.delete(corpusId);
      }
    }
  }

  /** Enqueues the run for one tick; exported behaviour for tests and for `jobs schedule --now`. */
  fire(row: Pick<ScheduleRow, 'corpus_id' | 'kind' | 'params'>, tick: Date): JobRow | undefined {
    const open = this.db
      .prepare("SELECT 1 FROM jobs WHERE kind = ? AND corpus_id = ? AND state IN ('queued','running') LIMIT 1")
      .get(row.kind, row.corpus_id);
    if (open) return undefined;
    const tickKey = new Date(Math.floor(tick.getTime() / 1000) * 1000).toISOString();
    const { job, created } = enqueueJob(this.db, {
      kind: row.kind,
      corpusId: row.corpus_id,
      params: { ...JSON.parse(row.params), corpusId: row.corpus_id },
      dedupeKey: `${row.kind}:${row.corpus_id}:${tickKey}`,
    });
    if (created) this.events.emitQueued(job.id);
    return created ? job : undefined;
  }
}
