/**
 * A progress bar for a job this process runs (extract, eval): the same bar as `job <id> --follow`, polling
 * the job row while the job runs here, on stderr so --json output stays clean.
 */
import type { Db } from '../store/database.js';
import { JobService } from '../jobs/service.js';
import { followJob } from './commands/jobs.js';

export function followInBackground(db: Db, jobId: number, pollMs: number): Promise<void> {
  return followJob(new JobService(db), jobId, pollMs).then(
    () => undefined,
    () => undefined, // a bar that cannot draw must not fail the run
  );
}
