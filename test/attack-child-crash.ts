/**
 * A runner process whose one job runs three sandbox functions over ten documents in one checkpointed unit,
 * guarded by crash markers: `node --import tsx test/attack-child-crash.ts <db>`. The test SIGKILLs it while
 * the slow function runs, as a function that kills its process would.
 */
import { loadSettings } from '../src/config.js';
import { openDatabase } from '../src/store/database.js';
import { JobRunner } from '../src/jobs/runner.js';
import { guardAgainstCrashes } from '../src/pipeline/crash-markers.js';
import { createSandbox } from '../src/sandbox/index.js';

const [dbPath] = process.argv.slice(2) as [string];
const settings = loadSettings();
const db = openDatabase(dbPath);
const sandbox = createSandbox({ ...settings.sandbox, workers: 1, callTimeoutMs: 5000 });
const FUNCTIONS = [
  { id: 'first', source: 'function extract(text) { return text.slice(0, 3); }' },
  { id: 'slow', source: 'function extract(text) { let x = 0; for (let i = 0; i < 4e7; i++) x += i; return "slow"; }' },
  { id: 'last', source: 'function extract(text) { return text.slice(-2); }' },
];
const DOCS = Array.from({ length: 10 }, (_, i) => ({ id: i, text: `doc ${String(i).padStart(2, '0')}` }));

const runner = new JobRunner({
  db,
  settings: settings.jobs,
  handlers: {
    crashy: async (_params, outer) => {
      const { ctx, sandbox: guarded } = guardAgainstCrashes(db, outer, sandbox, { maxCrashes: settings.jobs.unitMaxCrashes });
      return ctx.checkpoint('batch:0', async () => {
        const out = await guarded.run(FUNCTIONS, DOCS);
        return Object.fromEntries(FUNCTIONS.map((f, i) => [f.id, out[i].map((c) => (c.ok ? (c.value?.[0] ?? null) : c.error.code))]));
      });
    },
  },
});
process.stdout.write('ready\n');
for (;;) {
  const job = await runner.runOnce();
  if (job) continue;
  const open = db.prepare("SELECT count(*) FROM jobs WHERE state IN ('queued','running')").pluck().get() as number;
  if (open === 0) break;
  await new Promise((r) => setTimeout(r, settings.jobs.pollMs));
}
await sandbox.close();
db.close();
process.stdout.write('exit\n');
