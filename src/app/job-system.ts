/**
 * Composition root: the job system every long-running process runs (`evaporate serve` and `evaporate jobs
 * worker`), wiring the pipeline's extract handler and the nightly incremental handler into the runner and the
 * cron scheduler. It sits above jobs and pipeline (ARCHITECTURE.md); only the CLI commands import it.
 */
import type { Settings } from '../config.js';
import { createIncrementalPipeline } from '../pipeline/incremental.js';
import { createPipelineServices, extractHandler, EXTRACT_JOB_KIND } from '../pipeline/service.js';
import type { Db } from '../store/database.js';
import { withShardQueue } from './shards.js';
import { createNightlyHandler } from '../jobs/nightly.js';
import { startJobSystem, type JobSystem } from '../jobs/system.js';
import type { JobHandler } from '../jobs/types.js';

export interface DefaultJobSystem {
  system: JobSystem;
  /** Releases the pipeline's services (the sandbox pool); call after system.stop(). */
  closeServices(): Promise<void>;
}

export function startDefaultJobSystem(db: Db, settings: Settings, options: { schedule?: boolean; concurrency?: number } = {}): DefaultJobSystem {
  const services = withShardQueue(createPipelineServices(db, settings), settings);
  const handlers: Record<string, JobHandler<any, any>> = {
    [EXTRACT_JOB_KIND]: extractHandler(services),
    nightly: createNightlyHandler({ db, pipeline: createIncrementalPipeline(services), settings: settings.jobs }),
  };
  const system = startJobSystem({ db, settings, handlers, schedule: options.schedule, concurrency: options.concurrency });
  return { system, closeServices: () => services.close() };
}
