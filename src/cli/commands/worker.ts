/**
 * `evaporate worker --redis <url>`: runs corpus-pass shards from the queue in the sandbox pool, on any machine.
 * Needs no database file. SIGTERM (or SIGINT) finishes the shards in hand, then exits; a second signal exits at once.
 */
import type { Command } from 'commander';
import { loadSettings } from '../../config.js';
import { action } from '../common.js';

/** Names of environment variables a worker keeps out of its process once read (the sandbox gets none anyway). */
const SECRETS = ['EVAPORATE_REDIS_URL', 'EVAPORATE_API_KEY', 'OPENAI_API_KEY'];

export function register(program: Command): void {
  program
    .command('worker')
    .description('run corpus-pass shards from the Redis queue (EVAPORATE_REDIS_URL) until SIGTERM')
    .option('--redis <url>', 'Redis URL of the shard queue (default: EVAPORATE_REDIS_URL)')
    .option('--concurrency <n>', 'shards at once (default: EVAPORATE_WORKER_CONCURRENCY or 1)', (v) => Number.parseInt(v, 10))
    .action(
      action(async (options: { redis?: string; concurrency?: number }) => {
        const base = loadSettings();
        const redisUrl = options.redis ?? base.shards.redisUrl;
        if (!redisUrl) {
          console.error('error: the worker needs the shard queue: --redis redis://host:6379 or EVAPORATE_REDIS_URL.');
          process.exitCode = 2;
          return;
        }
        for (const name of SECRETS) delete process.env[name];
        const settings = { ...base, shards: { ...base.shards, redisUrl } };
        const { createSandbox } = await import('../../sandbox/index.js');
        const { startShardWorker } = await import('../../shards/worker.js');
        const sandbox = createSandbox(settings.sandbox);
        const log = (line: string) => process.stdout.write(`${line}\n`);
        const concurrency = options.concurrency ?? settings.shards.workerConcurrency;
        const worker = startShardWorker({
          settings: settings.shards,
          sandbox,
          concurrency,
          events: {
            onStart: (s) => log(`shard-start job ${s.jobId} batch:${s.index} (${s.documents} documents)`),
            onDone: (s) => log(`shard-done job ${s.jobId} batch:${s.index} in ${Math.round(s.ms)} ms`),
            onError: (e) => console.error(`shard error: ${e.message}`),
          },
        });
        log(`worker ${process.pid} ready: queue ${settings.shards.queue}, ${concurrency} shard(s) at once`);
        let signalled = false;
        const stop = (signal: string) => {
          if (signalled) process.exit(130);
          signalled = true;
          log(`${signal}: finishing the shards in hand, then stopping`);
          void worker
            .close()
            .then(() => sandbox.close())
            .then(
              () => {
                log('worker stopped');
                process.exit(0);
              },
              (e) => {
                console.error(e);
                process.exit(1);
              },
            );
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
      }),
    );
}
