/**
 * The worker's side of the shard queue: pulls shards from BullMQ and runs them in the same sandbox pool the
 * in-process pass uses. It needs Redis and nothing else (no database, no model endpoint, no API key).
 *
 * Failure counts are job-wide across workers: before each shard the worker reads the run's counts from
 * Redis into the sandbox's failure map (so a function past its limit anywhere is disabled here), and adds
 * what this shard's calls added. The outputs carry only this shard's own additions, which the coordinator
 * sums from its checkpoints and raises Redis to after a loss.
 */
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { Settings } from '../config.js';
import { runAttributes } from '../pipeline/aggregation.js';
import type { ShardOutputs } from '../pipeline/corpus-shards.js';
import type { Sandbox } from '../sandbox/types.js';
import { failureField, failuresKey, parseShard, SHARD_JOB_NAME } from './protocol.js';

export interface ShardWorker {
  /** Stops taking shards and lets the ones in hand finish (their results still reach the coordinator). */
  close(): Promise<void>;
}

export interface ShardEvents {
  onStart?(shard: { jobId: number; index: number; documents: number }): void;
  onDone?(shard: { jobId: number; index: number; documents: number; ms: number }): void;
  onError?(error: Error): void;
}

export function startShardWorker(options: { settings: Settings['shards']; sandbox: Sandbox; concurrency?: number; events?: ShardEvents }): ShardWorker {
  const { settings, sandbox, events = {} } = options;
  const redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
  redis.on('error', () => {});
  const processor = async (job: Job): Promise<ShardOutputs> => {
    if (job.name !== SHARD_JOB_NAME) throw new Error(`Unknown job "${job.name}" on the shard queue.`);
    const shard = parseShard(job.data);
    const t0 = performance.now();
    events.onStart?.({ jobId: shard.jobId, index: shard.index, documents: shard.documents.length });
    const key = failuresKey(settings.prefix, settings.queue, shard.run);
    const out: ShardOutputs = {};
    // Read once a shard: each Redis round trip is a hand-off between processes, and they add up per shard.
    const known = await redis.hgetall(key);
    const failures = new Map(
      shard.attributes.map((a) => [a.name, new Map(a.functions.flatMap((f): [string, number][] => {
        const n = Number(known[failureField(a.name, f.id)] ?? 0);
        return n > 0 ? [[f.id, n]] : [];
      }))]),
    );
    const before = new Map([...failures].map(([name, counts]) => [name, new Map(counts)]));
    // All attributes in one sandbox call: each document crosses into the sandbox once a shard.
    const batches = await runAttributes(sandbox, shard.attributes, shard.documents, failures);
    const raised: [string, number][] = [];
    for (const attribute of shard.attributes) {
      const added: Record<string, number> = {};
      const was = before.get(attribute.name)!;
      for (const [id, n] of failures.get(attribute.name)!) if (n > (was.get(id) ?? 0)) added[id] = n - (was.get(id) ?? 0);
      for (const [id, n] of Object.entries(added)) raised.push([failureField(attribute.name, id), n]);
      out[attribute.name] = { ...batches[attribute.name], failures: added };
    }
    if (raised.length) {
      const m = redis.multi();
      for (const [field, n] of raised) m.hincrby(key, field, n);
      await m.pexpire(key, 86_400_000).exec();
    }
    events.onDone?.({ jobId: shard.jobId, index: shard.index, documents: shard.documents.length, ms: performance.now() - t0 });
    return out;
  };
  const worker = new Worker(settings.queue, processor, {
    connection: { url: settings.redisUrl, maxRetriesPerRequest: null },
    prefix: settings.prefix,
    concurrency: Math.max(1, options.concurrency ?? settings.workerConcurrency),
    lockDuration: settings.lockMs,
    stalledInterval: settings.stalledCheckMs,
    // A shard whose worker died is retried like any failed attempt, up to the shard's attempts.
    maxStalledCount: settings.attempts,
  });
  worker.on('error', (e) => events.onError?.(e));
  worker.on('failed', (_job, e) => events.onError?.(e));
  return {
    async close() {
      await worker.close();
      redis.disconnect();
    },
  };
}
