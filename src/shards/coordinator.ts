/**
 * The coordinator's side of the corpus-pass queue: a ShardRunner that puts corpus batches on a BullMQ queue
 * (through ShardIssuer, which recovers lost and refused shards) for `evaporate worker` processes to run.
 * Outputs are accepted only when they fit the shard issued (checkOutputs).
 */
import { randomUUID } from 'node:crypto';
import type { Settings } from '../config.js';
import type { CorpusShard, ShardOutputs, ShardRunner } from '../pipeline/corpus-shards.js';
import { ShardIssuer, type QueueStats } from './issuer.js';
import { encodeDocuments } from './documents-blob.js';
import { checkOutputs, documentsKey, failureField, failuresKey, PROTOCOL_VERSION, RAISE_TO_SCRIPT, SHARD_JOB_NAME, type ShardPayload } from './protocol.js';

/** A shard's documents outlive a coordinator that died holding them by at most this long. */
const DOCUMENTS_TTL_MS = 3_600_000;

export type { QueueStats } from './issuer.js';

export class QueueShardRunner implements ShardRunner {
  private readonly issuer: ShardIssuer;
  private readonly runs = new Map<number, string>();

  constructor(
    private readonly settings: Settings['shards'],
    log: (line: string) => void = () => {},
  ) {
    this.issuer = new ShardIssuer(settings, settings.queue, SHARD_JOB_NAME, settings.inFlight, log);
    this.issuer.redis.defineCommand('raiseTo', { numberOfKeys: 1, lua: RAISE_TO_SCRIPT });
  }

  get stats(): QueueStats {
    return this.issuer.stats;
  }

  run(shard: CorpusShard, context: { signal: AbortSignal; failures(): Map<string, Map<string, number>> }): Promise<ShardOutputs> {
    const run = runToken(this.runs, shard.jobId);
    const ids = shard.documentIds;
    return this.issuer.issue(() => {
      const id = `${run}.b${shard.index}`;
      const key = documentsKey(this.settings.prefix, this.settings.queue, id);
      const documents = encodeDocuments(shard.load());
      const payload: ShardPayload = { v: PROTOCOL_VERSION, run, jobId: shard.jobId, index: shard.index, attributes: shard.attributes, documentsKey: key, documentCount: ids.length };
      return {
        id,
        payload,
        label: `shard batch:${shard.index} of job ${shard.jobId} (documents ${ids[0]} to ${ids[ids.length - 1]})`,
        check: (result) => checkOutputs({ attributes: shard.attributes, documentIds: ids }, result),
        beforeAdd: async () => {
          // Written before every enqueue: after a Redis flush the documents are gone along with the job.
          await this.issuer.redis.set(key, documents, 'PX', DOCUMENTS_TTL_MS);
          await this.raiseFailures(run, context.failures());
        },
        settled: () => void this.issuer.redis.del(key).catch(() => {}),
      };
    }, context.signal);
  }

  close(): Promise<void> {
    return this.issuer.close();
  }

  /** Job-wide failure counts a flushed Redis lost are restored before a shard goes (again). */
  private async raiseFailures(run: string, totals: Map<string, Map<string, number>>): Promise<void> {
    const args: (string | number)[] = [];
    for (const [attribute, counts] of totals) for (const [fn, n] of counts) if (n > 0) args.push(failureField(attribute, fn), n);
    if (args.length) await (this.issuer.redis as unknown as { raiseTo(key: string, ...args: (string | number)[]): Promise<number> }).raiseTo(failuresKey(this.settings.prefix, this.settings.queue, run), ...args);
  }
}

/** A fresh token per job and coordinator process: outputs of an earlier process's shards are not taken. */
export function runToken(runs: Map<number, string>, jobId: number): string {
  let run = runs.get(jobId);
  if (!run) runs.set(jobId, (run = `j${jobId}.${randomUUID().slice(0, 8)}`));
  return run;
}
