/**
 * The worker's side of the shard queues: pulls corpus shards from BullMQ and runs them in the same sandbox pool
 * the in-process pass uses, and, where it has an extraction model, direct-extraction shards through that model.
 * It needs Redis and nothing else (no database; a model only for direct extraction). Its model's key lives
 * in this process only: sandboxed functions run in child processes with an empty environment.
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
import { isEvaporateError } from '../errors.js';
import { decodeDocuments } from './documents-blob.js';
import type { LlmProvider } from '../llm/types.js';
import { DIRECT_JOB_NAME, directQueueName, failureField, failuresKey, parseDirectShard, parseShard, SHARD_JOB_NAME, type CallOutcome } from './protocol.js';

export interface ShardWorker {
  /** Stops taking shards and lets the ones in hand finish (their results still reach the coordinator). */
  close(): Promise<void>;
}

export interface ShardEvents {
  /** `documents` counts a direct-extraction shard's calls. */
  onStart?(shard: { jobId: number; index: number; documents: number; kind?: 'direct' }): void;
  onDone?(shard: { jobId: number; index: number; documents: number; ms: number; kind?: 'direct' }): void;
  onError?(error: Error): void;
}

export interface WorkerModel {
  provider: LlmProvider;
  /** The model name it serves; a shard asking for another is answered with model_mismatch, not served. */
  model: string;
  /** Direct-extraction shards at once (each runs its calls together through the provider's limiter). */
  concurrency: number;
}

export function startShardWorker(options: { settings: Settings['shards']; sandbox: Sandbox; concurrency?: number; events?: ShardEvents; llm?: WorkerModel }): ShardWorker {
  const { settings, sandbox, events = {} } = options;
  const redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
  redis.on('error', () => {});
  const processor = async (job: Job): Promise<ShardOutputs> => {
    if (job.name !== SHARD_JOB_NAME) throw new Error(`Unknown job "${job.name}" on the shard queue.`);
    const shard = parseShard(job.data);
    const t0 = performance.now();
    const blob = await redis.getBuffer(shard.documentsKey);
    // Gone only if Redis lost it after the job was taken; the attempt fails and the coordinator writes both again.
    if (!blob) throw new Error(`The documents of shard batch:${shard.index} of job ${shard.jobId} are not in Redis (was it flushed?).`);
    const documents = decodeDocuments(blob, shard.documentCount);
    events.onStart?.({ jobId: shard.jobId, index: shard.index, documents: documents.length });
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
    const batches = await runAttributes(sandbox, shard.attributes, documents, failures);
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
    events.onDone?.({ jobId: shard.jobId, index: shard.index, documents: documents.length, ms: performance.now() - t0 });
    return out;
  };
  const workers = [listen(settings, settings.queue, processor, options.concurrency ?? settings.workerConcurrency, events)];
  if (options.llm) workers.push(listen(settings, directQueueName(settings.queue), directProcessor(options.llm, events), options.llm.concurrency, events));
  return {
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      redis.disconnect();
    },
  };
}

function listen(settings: Settings['shards'], queue: string, processor: (job: Job) => Promise<unknown>, concurrency: number, events: ShardEvents): Worker {
  const worker = new Worker(queue, processor, {
    connection: { url: settings.redisUrl, maxRetriesPerRequest: null },
    prefix: settings.prefix,
    concurrency: Math.max(1, concurrency),
    lockDuration: settings.lockMs,
    stalledInterval: settings.stalledCheckMs,
    // A shard whose worker died is retried like any failed attempt, up to the shard's attempts.
    maxStalledCount: settings.attempts,
  });
  worker.on('error', (e) => events.onError?.(e));
  worker.on('failed', (_job, e) => events.onError?.(e));
  return worker;
}

/**
 * Runs a direct-extraction shard's calls together through this worker's model and answers each with its
 * completion or its error: one call's failure is that call's outcome, not the shard's.
 */
function directProcessor(llm: WorkerModel, events: ShardEvents) {
  return async (job: Job): Promise<CallOutcome[]> => {
    if (job.name !== DIRECT_JOB_NAME) throw new Error(`Unknown job "${job.name}" on the direct-extraction queue.`);
    const shard = parseDirectShard(job.data);
    const t0 = performance.now();
    events.onStart?.({ jobId: shard.jobId, index: shard.index, documents: shard.calls.length, kind: 'direct' });
    const outcomes = await Promise.all(
      shard.calls.map(async (call): Promise<CallOutcome> => {
        if (call.model !== undefined && call.model !== llm.model)
          return { error: { code: 'model_mismatch', message: `This worker serves model "${llm.model}" and the job asks for "${call.model}": start the workers of this queue with the coordinator's extraction model.` } };
        try {
          const { cached: _cached, ...ok } = await llm.provider.complete({ ...call, model: llm.model });
          return { ok };
        } catch (e) {
          const code = isEvaporateError(e) ? e.code : 'llm_error';
          return { error: { code, message: (e as Error).message ?? String(e) } };
        }
      }),
    );
    events.onDone?.({ jobId: shard.jobId, index: shard.index, documents: shard.calls.length, ms: performance.now() - t0, kind: 'direct' });
    return outcomes;
  };
}
