/**
 * `evaporate worker --redis <url>`: runs corpus-pass shards from the queue in the sandbox pool, on any machine.
 * Needs no database file. SIGTERM (or SIGINT) finishes the shards in hand, then exits; a second signal exits at once.
 */
import type { Command } from 'commander';
import { loadSettings } from '../../config.js';
import type { Settings } from '../../config.js';
import type { WorkerModel } from '../../shards/worker.js';
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
        const settings = { ...base, shards: { ...base.shards, redisUrl } };
        // Read before the credentials leave the environment: the model's key stays in this process's memory only.
        const llm = await workerModel(settings);
        for (const name of SECRETS) delete process.env[name];
        const { createSandbox } = await import('../../sandbox/index.js');
        const { startShardWorker } = await import('../../shards/worker.js');
        const sandbox = createSandbox(settings.sandbox);
        const log = (line: string) => process.stdout.write(`${line}\n`);
        const concurrency = options.concurrency ?? settings.shards.workerConcurrency;
        const worker = startShardWorker({
          settings: settings.shards,
          sandbox,
          concurrency,
          llm,
          events: {
            onStart: (s) => log(s.kind === 'direct' ? `shard-start job ${s.jobId} direct:${s.index} (${s.documents} calls)` : `shard-start job ${s.jobId} batch:${s.index} (${s.documents} documents)`),
            onDone: (s) => log(`shard-done job ${s.jobId} ${s.kind === 'direct' ? 'direct' : 'batch'}:${s.index} in ${Math.round(s.ms)} ms`),
            onError: (e) => console.error(`shard error: ${e.message}`),
          },
        });
        log(
          `worker ${process.pid} ready: queue ${settings.shards.queue}, ${concurrency} shard(s) at once; ` +
            (llm ? `direct extraction with model "${llm.model}"` : 'no extraction model, so no direct-extraction shards'),
        );
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

/**
 * The extraction model this worker serves direct-extraction shards with: the local engine where
 * EVAPORATE_LOCAL_MODEL_DIR is set, else the OpenAI-compatible endpoint where an extraction model is configured.
 */
async function workerModel(settings: Settings): Promise<WorkerModel | undefined> {
  const { createWorkerLlm } = await import('../../llm/index.js');
  if (settings.local.modelDir) {
    const { sharedLocalProvider, localLimiter, LOCAL_MODEL_NAME } = await import('../../pipeline/service.js');
    const served = createWorkerLlm({ settings, provider: sharedLocalProvider(settings.local), model: LOCAL_MODEL_NAME, limiter: localLimiter(settings) })!;
    return { ...served, concurrency: Math.max(1, Math.ceil(settings.local.maxBatch / settings.shards.directCalls)) };
  }
  const served = createWorkerLlm({ settings });
  return served && { ...served, concurrency: Math.max(1, Math.ceil(settings.llm.concurrency / settings.shards.directCalls)) };
}
