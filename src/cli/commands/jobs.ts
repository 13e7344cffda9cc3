/**
 * `evaporate jobs` (list), `evaporate job <id> [--follow]` (a progress bar until the job ends),
 * `evaporate jobs cancel|retry <id>`, `evaporate jobs schedule <corpus> [cron]`: the same JobService
 * the API uses, on the database directly, so it works with or without a running server.
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { loadSettings } from '../../config.js';
import { isEvaporateError } from '../../errors.js';
import { openDatabase } from '../../store/database.js';
import { JobService } from '../../jobs/service.js';
import { TERMINAL_STATES, type JobView } from '../../jobs/store.js';
import type { JobHandler } from '../../jobs/types.js';
import type { IncrementalPipeline } from '../../jobs/nightly.js';

let globalDb: () => string | undefined = () => undefined;

async function withService<T>(dbPath: string | undefined, fn: (s: JobService) => T | Promise<T>): Promise<T | undefined> {
  const db = openDatabase(dbPath ?? globalDb() ?? loadSettings().databasePath);
  try {
    return await fn(new JobService(db));
  } catch (error) {
    if (isEvaporateError(error)) {
      console.error(`error (${error.code}): ${error.message}`);
      process.exitCode = 1;
      return undefined;
    }
    throw error;
  } finally {
    db.close();
  }
}

function line(j: JobView): string {
  const pct = j.total > 0 ? ` ${Math.floor((100 * j.done) / j.total)}%` : '';
  const step = j.step ? ` ${j.step} ${j.done}/${j.total}${pct}` : '';
  const cost = j.tokens ? ` ${j.tokens} tokens $${j.costUsd.toFixed(4)}` : '';
  const err = j.error ? ` ${j.error.code}: ${j.error.message}` : '';
  const warnings = j.warnings.map((w) => `\n  warning ${w.code}: ${w.message}`).join('');
  return `#${j.id} ${j.kind}${j.corpusId ? ` corpus ${j.corpusId}` : ''} ${j.outcome}${step}${cost}${err}${warnings}`;
}

const parseId = (raw: string) => Number.parseInt(raw, 10);

export async function followJob(service: JobService, id: number, pollMs: number, out = process.stderr): Promise<JobView> {
  const bar = new cliProgress.SingleBar(
    {
      format: '{step} [{bar}] {value}/{total} | ETA {eta_s} | {tokens} tokens ${cost} | {state}',
      stream: out,
      hideCursor: true,
      // Logs (no terminal) still get a progress line every few seconds.
      noTTYOutput: true,
      notTTYSchedule: 5000,
    },
    cliProgress.Presets.shades_classic,
  );
  let view = service.get(id);
  let step = view.step;
  const payload = (v: JobView) => ({
    step: v.step ?? v.state,
    state: v.state,
    tokens: v.tokens,
    cost: v.costUsd.toFixed(4),
    eta_s: v.etaSeconds === null ? '?' : `${Math.round(v.etaSeconds)}s`,
  });
  bar.start(Math.max(view.total, 1), view.done, payload(view));
  while (!TERMINAL_STATES.includes(view.state)) {
    await new Promise((r) => setTimeout(r, pollMs));
    view = service.get(id);
    if (view.step !== step) step = view.step;
    bar.setTotal(Math.max(view.total, 1));
    bar.update(view.done, payload(view));
  }
  bar.update(view.done, payload(view));
  bar.stop();
  return view;
}

export function register(program: Command): void {
  registerJobsCommands(program);
}

export function registerJobsCommands(program: Command): void {
  globalDb = () => program.opts<{ db?: string }>().db;
  const dbOption = ['--db <file>', 'SQLite database file (default: EVAPORATE_DB)'] as const;
  const jobs = program.command('jobs').description('Durable jobs: list, follow, cancel, retry; nightly schedules per corpus.');

  jobs
    .command('list', { isDefault: true })
    .description('List jobs, newest first')
    .option('--state <state>', 'queued | running | succeeded | failed | cancelled')
    .option('--corpus <id>', 'only jobs of this corpus')
    .option('--json', 'print JSON')
    .option(...dbOption)
    .action((opts: { state?: string; corpus?: string; json?: boolean; db?: string }) =>
      withService(opts.db, (s) => {
        const list = s.list({ state: opts.state as JobView['state'], corpusId: opts.corpus ? parseId(opts.corpus) : undefined });
        console.log(opts.json ? JSON.stringify(list, null, 2) : list.map(line).join('\n') || 'no jobs');
      }),
    );

  const show = (id: string, opts: { follow?: boolean; json?: boolean; db?: string }) =>
    withService(opts.db, async (s) => {
      const view = opts.follow ? await followJob(s, parseId(id), loadSettings().jobs.pollMs) : s.get(parseId(id));
      console.log(opts.json ? JSON.stringify(view, null, 2) : line(view));
      if (opts.follow && view.state !== 'succeeded') process.exitCode = 1;
    });
  for (const cmd of [jobs.command('show'), program.command('job')]) {
    cmd
      .description('Show a job; with --follow, a progress bar until it ends (exit code 1 unless it succeeds)')
      .argument('<id>', 'job id')
      .option('-f, --follow', 'follow progress until the job ends')
      .option('--json', 'print JSON')
      .option(...dbOption)
      .action(show);
  }

  jobs
    .command('cancel')
    .description('Cancel a job; a running one stops at its next checkpoint')
    .argument('<id>', 'job id')
    .option(...dbOption)
    .action((id: string, opts: { db?: string }) => withService(opts.db, (s) => console.log(line(s.cancel(parseId(id))))));

  jobs
    .command('retry')
    .description('Re-queue a failed or cancelled job; it resumes from its completed checkpoints')
    .argument('<id>', 'job id')
    .option(...dbOption)
    .action((id: string, opts: { db?: string }) => withService(opts.db, (s) => console.log(line(s.retry(parseId(id))))));

  jobs
    .command('schedule')
    .description('Show, set (with a cron expression) or remove (--off) the incremental run of a corpus')
    .argument('<corpus>', 'corpus id')
    .argument('[cron]', 'cron expression, e.g. "0 2 * * *" for 02:00 every night')
    .option('--tz <zone>', 'time zone of the expression, e.g. Europe/Paris')
    .option('--off', 'remove the schedule')
    .option(...dbOption)
    .action((corpus: string, cron: string | undefined, opts: { tz?: string; off?: boolean; db?: string }) =>
      withService(opts.db, (s) => {
        const id = parseId(corpus);
        if (opts.off) return void (s.deleteSchedule(id), console.log(`corpus ${id}: schedule removed`));
        const v = cron ? s.setSchedule(id, { cron, timezone: opts.tz }) : s.getSchedule(id);
        console.log(`corpus ${v.corpusId}: "${v.cron}"${v.timezone ? ` (${v.timezone})` : ''} next ${v.nextRunAt ?? '-'} watermark ${v.watermark}`);
      }),
    );

  registerWorkerCommand(jobs, globalDb);

  jobs
    .command('health')
    .description('Per-run health of each attribute of a corpus (share of documents where functions abstain or disagree)')
    .argument('<corpus>', 'corpus id')
    .option(...dbOption)
    .action((corpus: string, opts: { db?: string }) =>
      withService(opts.db, (s) => {
        for (const h of s.health(parseId(corpus))) {
          console.log(
            `${h.createdAt} job ${h.jobId ?? '-'} ${h.runKind} ${h.attribute}: unhealthy ${(100 * h.unhealthyShare).toFixed(1)}% of ${h.documents}` +
              `${h.baselineShare === null ? '' : ` (baseline ${(100 * h.baselineShare).toFixed(1)}%)`}${h.drifted ? ' DRIFTED' : ''}${h.resynthesized ? ' resynthesized' : ''}`,
          );
        }
      }),
    );
}

/**
 * `evaporate jobs worker`: a runner (and scheduler) process. The extract job comes from the pipeline; the
 * nightly job is registered when the pipeline provides its IncrementalPipeline (src/pipeline/incremental.ts
 * exporting createIncrementalPipeline(services)).
 */
export function registerWorkerCommand(jobs: Command, dbPath: () => string | undefined): void {
  jobs
    .command('worker')
    .description('Run queued jobs and fire corpus schedules until SIGTERM (then stop at the next checkpoint)')
    .option('--concurrency <n>', 'jobs at once', (v) => Number.parseInt(v, 10), 1)
    .option('--no-schedule', 'do not fire cron schedules in this process')
    .option('--db <file>', 'SQLite database file (default: EVAPORATE_DB)')
    .action(async (opts: { concurrency: number; schedule: boolean; db?: string }) => {
      const { exitGracefully } = await import('../../jobs/system.js');
      const { startDefaultJobSystem } = await import('../../app/job-system.js');
      const settings = loadSettings(opts.db || dbPath() ? { databasePath: opts.db ?? dbPath()! } : {});
      const db = openDatabase(settings.databasePath);
      const { system, closeServices } = startDefaultJobSystem(db, settings, { schedule: opts.schedule, concurrency: opts.concurrency });
      const handlers = system.runner.kinds();
      console.error(`worker ${system.runner.owner}: running ${handlers.join(', ')} jobs from ${settings.databasePath}`);
      exitGracefully(system, async () => {
        await closeServices();
        db.close();
      });
    });
}
