/**
 * The corpus pass as shards: "these functions over this batch of document ids", run wherever a ShardRunner
 * sends them (src/shards puts them on a BullMQ queue for `evaporate worker` processes). The coordinator stays
 * the single writer: each shard's outputs go through the same `batch:<n>` checkpoint as the in-process pass, so
 * a shard done twice (a retried or re-enqueued one) changes nothing, and a resumed job skips finished shards.
 */
import { setMaxListeners } from 'node:events';
import type { ExtractionFunction, SandboxDocument } from '../sandbox/types.js';
import type { JobContext } from '../jobs/types.js';
import type { BatchOutputs } from './aggregation.js';
import { checkBatchOutputs } from './batches.js';

/** Per attribute, the shard's outputs; `failures` holds the failures this shard added, per function id. */
export type ShardOutputs = Record<string, BatchOutputs>;

export interface CorpusShard {
  jobId: number;
  /** Index of the batch: the shard's checkpoint is `batch:<index>`. */
  index: number;
  attributes: { name: string; functions: ExtractionFunction[] }[];
  documentIds: number[];
  /** Reads the shard's documents when it is about to be issued (so only the shards in flight sit in memory). */
  load(): SandboxDocument[];
}

export interface ShardRunner {
  /**
   * Runs one shard elsewhere and resolves with its checked outputs. `failures()` gives the job-wide failure
   * counts known to the coordinator (attribute -> function id -> count), so a worker disables a poisoned
   * function even after the queue's own counts were lost.
   */
  run(shard: CorpusShard, context: { signal: AbortSignal; failures(): Map<string, Map<string, number>> }): Promise<ShardOutputs>;
}

/**
 * Issues every batch not yet checkpointed to the runner at once (the runner bounds how many are in flight) and
 * records each as it comes back. Progress counts documents of finished shards.
 */
export async function shardedCorpusPass(
  runner: ShardRunner,
  ctx: JobContext,
  /** batches: the job's documents as cut by cutBatches (batch n is checkpoint `batch:<n>`). */
  input: { attributes: CorpusShard['attributes']; batches: number[][]; load: (ids: number[]) => SandboxDocument[] },
): Promise<ShardOutputs[]> {
  const { batches } = input;
  const total = batches.reduce((n, b) => n + b.length, 0);
  const totals = new Map(input.attributes.map((a) => [a.name, new Map<string, number>()]));
  const count = (out: ShardOutputs) => {
    for (const a of input.attributes)
      for (const [id, n] of Object.entries(out[a.name]?.failures ?? {})) totals.get(a.name)!.set(id, (totals.get(a.name)!.get(id) ?? 0) + n);
  };
  let done = 0;
  // One shard failing for good ends the pass: the shards still waiting for a slot are not issued.
  const stop = new AbortController();
  // Every waiting shard listens to it; there are as many as batches.
  setMaxListeners(0, stop.signal);
  const onAbort = () => stop.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  ctx.progress('aggregation', 0, total);
  const shards = batches.map((ids, index) =>
    ctx
      .checkpoint(`batch:${index}`, () =>
        runner.run(
          { jobId: ctx.jobId, index, attributes: input.attributes, documentIds: ids, load: () => input.load(ids) },
          { signal: stop.signal, failures: () => totals },
        ),
      )
      .then((out) => (checkBatchOutputs(index, ids, out), out))
      .then(
        (out) => {
          count(out);
          done += ids.length;
          ctx.progress('aggregation', done, total);
          return out;
        },
        (error: unknown) => {
          stop.abort(error);
          throw error;
        },
      ),
  );
  // allSettled, so no shard is left running unobserved behind the first error.
  const settled = await Promise.allSettled(shards);
  ctx.signal.removeEventListener('abort', onAbort);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return settled.map((s) => (s as PromiseFulfilledResult<ShardOutputs>).value);
}
