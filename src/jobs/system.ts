/**
 * The job machinery of one process: runner, scheduler and service sharing one event bus, plus the graceful
 * shutdown a long-running process needs. `evaporate jobs worker` uses it; `serve` can start the same thing.
 */
import type { Settings } from '../config.js';
import type { Db } from '../store/database.js';
import { JobEvents, jobEvents } from './events.js';
import { JobRunner } from './runner.js';
import { JobScheduler } from './scheduler.js';
import { JobService } from './service.js';
import type { JobHandler } from './types.js';

export interface JobSystem {
  runner: JobRunner;
  scheduler: JobScheduler | undefined;
  service: JobService;
  /** Stop claiming, let handlers stop at their next checkpoint, hand unfinished jobs back to the queue. */
  stop(): Promise<void>;
}

export function startJobSystem(options: {
  db: Db;
  settings: Settings;
  handlers: Record<string, JobHandler<any, any>>;
  events?: JobEvents;
  /** Run the cron scheduler in this process (several processes may; ticks are deduplicated). */
  schedule?: boolean;
  concurrency?: number;
}): JobSystem {
  const events = options.events ?? jobEvents;
  const runner = new JobRunner({
    db: options.db,
    settings: options.settings.jobs,
    handlers: options.handlers,
    events,
    concurrency: options.concurrency,
  });
  const scheduler = options.schedule === false ? undefined : new JobScheduler(options.db, events);
  runner.start();
  scheduler?.start();
  let stopping: Promise<void> | undefined;
  return {
    runner,
    scheduler,
    service: new JobService(options.db, events),
    stop: () =>
      (stopping ??= (async () => {
        scheduler?.stop();
        await runner.stop();
      })()),
  };
}

/**
 * SIGTERM / SIGINT: stop the job system, then run `close` (close the database, the sandbox pool) and exit.
 * A second signal exits at once; the lease then lapses and another runner resumes the job.
 */
export function exitGracefully(system: Pick<JobSystem, 'stop'>, close: () => Promise<void> | void, log = console.error): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(130);
    signalled = true;
    log(`${signal}: finishing the unit in hand, then stopping.`);
    void system
      .stop()
      .then(close)
      .then(
        () => process.exit(0),
        (e) => {
          log(e);
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
