/** `evaporate serve`: the REST service (the main job). */
import type { Command } from 'commander';
import { openDatabase } from '../../store/database.js';
import { action, settingsFor } from '../common.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the REST service (OpenAPI docs at /docs)')
    .option('--host <host>', 'address to bind (off loopback needs EVAPORATE_API_KEY)')
    .option('--port <port>', 'port', (v) => Number(v))
    .option('--no-jobs', 'do not run jobs in this process (leave them to `evaporate jobs worker`)')
    .action(
      action(async (options: { host?: string; port?: number; jobs?: boolean }, command: Command) => {
        const settings = settingsFor(command, {
          ...(options.host ? { host: options.host } : {}),
          ...(options.port !== undefined ? { port: options.port } : {}),
        });
        // Loaded here, not at the top: the other commands start faster without fastify and its plugins.
        const { buildApp, assertSafeBinding } = await import('../../server/app.js');
        assertSafeBinding(settings);
        const db = openDatabase(settings.databasePath);
        // The service runs the jobs it accepts (extractions, nightly schedules); more runners may join
        // with `evaporate jobs worker` on the same database, and leases keep them from sharing a job.
        const { startDefaultJobSystem } = await import('../../app/job-system.js');
        const { exitGracefully } = await import('../../jobs/system.js');
        const jobs = options.jobs === false ? undefined : startDefaultJobSystem(db, settings);
        const app = await buildApp({ db, settings, ...(jobs ? { jobs: jobs.system.service } : {}) });
        const address = await app.listen({ host: settings.host, port: settings.port });
        console.log(`evaporate listening on ${address} (docs: ${address}/docs, database: ${settings.databasePath})`);
        // SIGTERM: stop taking requests and jobs, checkpoint the unit in hand, close the database cleanly.
        exitGracefully(jobs?.system ?? { stop: async () => {} }, async () => {
          await app.close();
          await jobs?.closeServices();
          db.close();
        });
      }),
    );
}
