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
    .action(
      action(async (options: { host?: string; port?: number }, command: Command) => {
        const settings = settingsFor(command, {
          ...(options.host ? { host: options.host } : {}),
          ...(options.port !== undefined ? { port: options.port } : {}),
        });
        // Loaded here, not at the top: the other commands start faster without fastify and its plugins.
        const { buildApp, assertSafeBinding } = await import('../../server/app.js');
        assertSafeBinding(settings);
        const db = openDatabase(settings.databasePath);
        // Services other areas need (llm, sandbox, job runner) are created here and passed in the context.
        const app = await buildApp({ db, settings });
        const address = await app.listen({ host: settings.host, port: settings.port });
        console.log(`evaporate listening on ${address} (docs: ${address}/docs, database: ${settings.databasePath})`);
        const stop = async () => {
          await app.close();
          db.close();
          process.exit(0);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }),
    );
}
