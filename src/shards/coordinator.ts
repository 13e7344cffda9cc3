/**
 * The coordinator's side of the shard queue: a ShardRunner that puts shards on a BullMQ queue and waits for
 * `evaporate worker` processes to run them. It accepts outputs only from the BullMQ jobs it added itself
 * (ids with this process's random run token, kept in memory) and only when they fit the shard it issued.
 *
 * Losses it recovers from: a worker that dies mid-shard (BullMQ's stalled-job check hands the shard to
 * another worker once the lock expires), a Redis that restarts empty (the poll finds an issued shard missing
 * and adds it again; its documents are still in hand), a result that does not fit (counted as an attempt).
 * A shard that fails every attempt rejects with an error naming it.
 */
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import type { Settings } from '../config.js';
import { EvaporateError } from '../errors.js';
import type { CorpusShard, ShardOutputs, ShardRunner } from '../pipeline/corpus-shards.js';
import { checkOutputs, failureField, failuresKey, PROTOCOL_VERSION, RAISE_TO_SCRIPT, SHARD_JOB_NAME, type ShardPayload } from './protocol.js';

type ShardSettings = Settings['shards'];

interface Issued {
  payload: ShardPayload;
  documentIds: number[];
  /** Times this shard was put on the queue (a re-enqueue after a loss or a refused result adds one). */
  generation: number;
  id: string;
  adding: boolean;
  checking: boolean;
  failures: () => Map<string, Map<string, number>>;
  resolve(out: ShardOutputs): void;
  reject(error: unknown): void;
}

/** What the coordinator measured about the queue (the scale-out bench reads it). */
export interface QueueStats {
  issued: number;
  accepted: number;
  /** Shards whose payload size was measured (payloadBytes is their sum). */
  sampledPayloads: number;
  /** Results whose size was measured (resultBytes is their sum). */
  sampledResults: number;
  reissued: number;
  refused: number;
  payloadBytes: number;
  resultBytes: number;
}

const connectionOf = (url: string) => ({ url, maxRetriesPerRequest: null });

/**
 * Events BullMQ keeps in the queue's stream. Each "completed" event holds the shard's whole result (tens of KB),
 * and the default keeps 10,000 of them; the coordinator only needs the recent ones to wake up (its poll finds
 * any it missed), so a short stream keeps Redis memory to the shards in flight.
 */
const EVENTS_KEPT = 256;

const REDIS_ERROR_LOG_MS = 30_000;
const CLOSE_WAIT_MS = 2000;

/** How long a finished shard nobody read stays in Redis; a live coordinator reads it within its poll interval. */
const ORPHAN_RESULT_SECONDS = 3600;

export class QueueShardRunner implements ShardRunner {
  readonly stats: QueueStats = { issued: 0, accepted: 0, sampledPayloads: 0, sampledResults: 0, reissued: 0, refused: 0, payloadBytes: 0, resultBytes: 0 };
  private readonly queue: Queue;
  private readonly events: QueueEvents;
  private readonly redis: Redis;
  private readonly issued = new Map<string, Issued>();
  private readonly runs = new Map<number, string>();
  private readonly waiting: (() => void)[] = [];
  private inFlight = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly settings: ShardSettings,
    private readonly log: (line: string) => void = () => {},
    /** Measure payload and result bytes (one shard in eight) into `stats`: it serializes them once more, so only a bench asks. */
    private readonly measureBytes = false,
  ) {
    if (!settings.redisUrl) throw new Error('QueueShardRunner needs settings.shards.redisUrl');
    const connection = connectionOf(settings.redisUrl);
    this.queue = new Queue(settings.queue, { connection, prefix: settings.prefix, streams: { events: { maxLen: EVENTS_KEPT } } });
    this.events = new QueueEvents(settings.queue, { connection, prefix: settings.prefix });
    this.redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
    this.redis.defineCommand('raiseTo', { numberOfKeys: 1, lua: RAISE_TO_SCRIPT });
    // A completed event carries the result (BullMQ writes it with the completion, atomically), so it is taken
    // from there rather than read from the job again; failures and anything missed go through check().
    this.events.on('completed', ({ jobId, returnvalue }: { jobId: string; returnvalue: unknown }) => {
      const entry = this.issued.get(jobId);
      if (entry && !entry.adding) this.accept(entry, returnvalue, () => Buffer.byteLength(JSON.stringify(returnvalue)));
    });
    this.events.on('failed', ({ jobId }: { jobId: string }) => {
      const entry = this.issued.get(jobId);
      if (entry) void this.check(entry);
    });
    // Connection errors are retried by ioredis and the poll covers the gap; they are said (at most every
    // REDIS_ERROR_LOG_MS), so a job waiting on an unreachable Redis is not silent.
    let lastSaid = 0;
    const onError = (e: Error) => {
      if (Date.now() - lastSaid < REDIS_ERROR_LOG_MS) return;
      lastSaid = Date.now();
      this.log(`shard queue: Redis error (${e.message}); shards wait until it is back`);
    };
    this.events.on('error', onError);
    this.queue.on('error', onError);
    this.redis.on('error', onError);
    this.timer = setInterval(() => {
      for (const entry of this.issued.values()) void this.check(entry);
    }, settings.pollMs);
    this.timer.unref();
  }

  async run(shard: CorpusShard, context: { signal: AbortSignal; failures(): Map<string, Map<string, number>> }): Promise<ShardOutputs> {
    await this.acquire(context.signal);
    try {
      const payload: ShardPayload = {
        v: PROTOCOL_VERSION,
        run: this.runToken(shard.jobId),
        jobId: shard.jobId,
        index: shard.index,
        attributes: shard.attributes,
        documents: shard.load(),
      };
      return await new Promise<ShardOutputs>((resolve, reject) => {
        const entry: Issued = { payload, documentIds: shard.documentIds, generation: 0, id: '', adding: false, checking: false, failures: context.failures, resolve, reject };
        const onAbort = () => {
          this.issued.delete(entry.id);
          void this.queue.remove(entry.id).catch(() => {});
          reject(context.signal.reason);
        };
        if (context.signal.aborted) return onAbort();
        context.signal.addEventListener('abort', onAbort, { once: true });
        entry.resolve = (out) => {
          context.signal.removeEventListener('abort', onAbort);
          resolve(out);
        };
        entry.reject = (e) => {
          context.signal.removeEventListener('abort', onAbort);
          reject(e);
        };
        void this.add(entry);
      });
    } finally {
      this.release();
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    // A clean close waits for Redis; an unreachable one would hold the process's shutdown forever.
    const closed = Promise.allSettled([this.events.close(), this.queue.close()]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
    // Not awaited: against an unreachable Redis, BullMQ's disconnect waits as well.
    void this.events.disconnect().catch(() => {});
    void this.queue.disconnect().catch(() => {});
    this.redis.disconnect();
  }

  /** A fresh token per job and coordinator process: outputs of an earlier process's shards are not taken. */
  private runToken(jobId: number): string {
    let run = this.runs.get(jobId);
    if (!run) this.runs.set(jobId, (run = `j${jobId}.${randomUUID().slice(0, 8)}`));
    return run;
  }

  private async add(entry: Issued): Promise<void> {
    if (entry.generation > 0) this.issued.delete(entry.id);
    entry.generation++;
    entry.id = `${entry.payload.run}.b${entry.payload.index}.g${entry.generation}`;
    entry.adding = true;
    this.issued.set(entry.id, entry);
    try {
      await this.raiseFailures(entry.payload.run, entry.failures());
      await this.queue.add(SHARD_JOB_NAME, entry.payload, {
        jobId: entry.id,
        attempts: this.settings.attempts,
        backoff: { type: 'exponential', delay: this.settings.backoffMs },
        // The coordinator removes a result once read; these ages clear the ones nobody reads (a coordinator
        // that crashed leaves its shards behind, and its successor issues its own under a new token).
        removeOnComplete: { age: ORPHAN_RESULT_SECONDS },
        removeOnFail: { age: ORPHAN_RESULT_SECONDS },
      });
      this.stats.issued++;
      // Bytes measured on one shard in eight, and only when asked: measuring serializes the payload again.
      if (this.measureBytes && entry.payload.index % 8 === 0 && entry.generation === 1) {
        this.stats.sampledPayloads++;
        this.stats.payloadBytes += Buffer.byteLength(JSON.stringify(entry.payload));
      }
    } catch {
      // Redis unreachable: the poll tries again (the entry is still issued, and not in Redis).
    } finally {
      entry.adding = false;
    }
  }

  /** Looks the shard up in Redis: done, failed for good, missing (Redis lost it) or still under way. */
  private async check(entry: Issued): Promise<void> {
    if (entry.adding || entry.checking || this.issued.get(entry.id) !== entry) return;
    entry.checking = true;
    try {
      // State first, then the fields: a result read before the state was would miss one written in between.
      // Only the result fields are read, not the shard's documents back.
      const state = await this.queue.getJobState(entry.id);
      if (this.issued.get(entry.id) !== entry) return;
      if (state !== 'unknown' && state !== 'completed' && state !== 'failed') return;
      const [returnvalue, failedReason, attemptsMade] =
        state === 'unknown' ? [null, null, null] : await this.redis.hmget(this.queue.toKey(entry.id), 'returnvalue', 'failedReason', 'attemptsMade');
      if (this.issued.get(entry.id) !== entry) return;
      if (state === 'unknown' || (state === 'completed' && returnvalue === null)) {
        this.stats.reissued++;
        this.log(`shard batch:${entry.payload.index} of job ${entry.payload.jobId} is missing from Redis; enqueueing it again`);
        return await this.add(entry);
      }
      if (state === 'failed') return this.fail(entry, failedReason || 'no reason given', Number(attemptsMade ?? 0));
      let parsed: unknown;
      try {
        parsed = JSON.parse(returnvalue!);
      } catch {
        parsed = undefined;
      }
      this.accept(entry, parsed, () => Buffer.byteLength(returnvalue!));
    } catch {
      // Redis unreachable right now: the next poll looks again.
    } finally {
      entry.checking = false;
    }
  }

  /** Takes a finished shard's result if it fits the shard; otherwise the shard counts an attempt and goes again. */
  private accept(entry: Issued, result: unknown, bytes: () => number): void {
    if (this.issued.get(entry.id) !== entry) return;
    let out: ShardOutputs;
    try {
      out = checkOutputs({ attributes: entry.payload.attributes, documentIds: entry.documentIds }, result);
    } catch (e) {
      this.stats.refused++;
      if (entry.generation >= this.settings.attempts) return this.fail(entry, `its result was refused: ${(e as Error).message}`, entry.generation);
      this.log(`shard batch:${entry.payload.index}: result refused (${(e as Error).message}); enqueueing it again`);
      void this.add(entry);
      return;
    }
    this.issued.delete(entry.id);
    this.stats.accepted++;
    if (this.measureBytes && entry.payload.index % 8 === 0) {
      this.stats.sampledResults++;
      this.stats.resultBytes += bytes();
    }
    void this.queue.remove(entry.id).catch(() => {});
    entry.resolve(out);
  }

  private fail(entry: Issued, reason: string, attempts: number): void {
    this.issued.delete(entry.id);
    const ids = entry.documentIds;
    entry.reject(
      new EvaporateError(
        'shard_failed',
        `Shard batch:${entry.payload.index} of job ${entry.payload.jobId} (documents ${ids[0]} to ${ids[ids.length - 1]}) failed after ${attempts} attempt(s): ${reason}`,
        500,
      ),
    );
  }

  private async raiseFailures(run: string, totals: Map<string, Map<string, number>>): Promise<void> {
    const args: (string | number)[] = [];
    for (const [attribute, counts] of totals) for (const [fn, n] of counts) if (n > 0) args.push(failureField(attribute, fn), n);
    if (args.length) await (this.redis as unknown as { raiseTo(key: string, ...args: (string | number)[]): Promise<number> }).raiseTo(failuresKey(this.settings.prefix, this.settings.queue, run), ...args);
  }

  private acquire(signal: AbortSignal): Promise<void> {
    if (this.inFlight < this.settings.inFlight) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const go = () => {
        signal.removeEventListener('abort', stop);
        this.inFlight++;
        resolve();
      };
      const stop = () => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason);
      };
      if (signal.aborted) return stop();
      signal.addEventListener('abort', stop, { once: true });
      this.waiting.push(go);
    });
  }

  private release(): void {
    this.inFlight--;
    this.waiting.shift()?.();
  }
}
