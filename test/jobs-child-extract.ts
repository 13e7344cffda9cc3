/**
 * A runner process with the real extract job: `node --import tsx test/jobs-child-extract.ts <db> <llmUrl>`.
 * Prints "unit-start <key>" when a unit of work begins (only units not yet checkpointed run), so a test
 * can SIGKILL it inside synthesis, the corpus pass or materialization.
 */
import { loadSettings } from '../src/config.js';
import { openDatabase } from '../src/store/database.js';
import { createLlm, llmConfigFromEnv } from '../src/llm/index.js';
import { JobRunner } from '../src/jobs/runner.js';
import type { JobHandler } from '../src/jobs/types.js';
import { createPipelineServices, EXTRACT_JOB_KIND, extractHandler } from '../src/pipeline/service.js';

const [dbPath, llmUrl] = process.argv.slice(2) as [string, string];
const base = loadSettings({ databasePath: dbPath });
const settings = { ...base, sandbox: { ...base.sandbox, callTimeoutMs: 1000, workers: 1 } };
const db = openDatabase(dbPath);
const log = (line: string) => process.stdout.write(`${process.pid} ${line}\n`);
const llm = createLlm({ db, settings, config: llmConfigFromEnv({ OPENAI_BASE_URL: llmUrl, OPENAI_API_KEY: 'test', EVAPORATE_MODEL: 'fake-model' }) });
const services = createPipelineServices(db, settings, { llm });
const inner = extractHandler(services);
const instrumented: JobHandler<any, any> = (params, ctx) =>
  inner(params, {
    ...ctx,
    checkpoint: (key, fn, options) =>
      ctx.checkpoint(
        key,
        async () => {
          log(`unit-start ${key}`);
          return fn();
        },
        options,
      ),
  });
const runner = new JobRunner({ db, settings: settings.jobs, handlers: { [EXTRACT_JOB_KIND]: instrumented } });

log('ready');
for (;;) {
  const job = await runner.runOnce();
  if (job) {
    log(`finished ${job.id} ${job.state} ${job.error_message ?? ''}`.trim());
    continue;
  }
  const open = db.prepare("SELECT count(*) FROM jobs WHERE state IN ('queued','running')").pluck().get() as number;
  if (open === 0) break;
  await new Promise((r) => setTimeout(r, settings.jobs.pollMs));
}
await services.close();
db.close();
log('exit');
