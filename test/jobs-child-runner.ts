/**
 * A runner process for the crash tests: `tsx test/jobs-child-runner.ts <db> <llmUrl>`. It drains the queue
 * and exits; on SIGTERM it stops gracefully. Every line it prints carries its pid so a test can tell two
 * runners apart.
 */
import { loadSettings } from '../src/config.js';
import { openDatabase } from '../src/store/database.js';
import { JobRunner } from '../src/jobs/runner.js';
import { exitGracefully } from '../src/jobs/system.js';
import { demoHandler } from './jobs-demo-handler.js';

const [dbPath, llmUrl] = process.argv.slice(2) as [string, string];
const settings = loadSettings();
const db = openDatabase(dbPath);
const log = (line: string) => process.stdout.write(`${process.pid} ${line}\n`);
const runner = new JobRunner({ db, settings: settings.jobs, handlers: { demo: demoHandler(db, { llmUrl, log }) } });

let stopping = false;
exitGracefully(
  {
    stop: () => {
      stopping = true;
      return runner.stop();
    },
  },
  () => {
    db.close();
    log('stopped');
  },
  () => {},
);

log('ready');
// Drain until no job is queued or running: a job still leased by a killed process is claimable once
// its lease lapses, which is exactly the recovery path under test.
for (;;) {
  const job = await runner.runOnce();
  if (job) {
    log(`finished ${job.id} ${job.state}`);
    continue;
  }
  if (stopping) await new Promise(() => {}); // exitGracefully ends the process
  const open = db.prepare("SELECT count(*) FROM jobs WHERE state IN ('queued','running')").pluck().get() as number;
  if (open === 0) break;
  await new Promise((r) => setTimeout(r, settings.jobs.pollMs));
}
db.close();
log('exit');
