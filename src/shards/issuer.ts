/**
 * The coordinator's half of one BullMQ queue: puts shards on it, waits for `evaporate worker` processes to run
 * them, and hands back each result once it was checked against the shard issued. Both kinds of shard (corpus
 * batches, src/shards/coordinator.ts, and direct-extraction calls, src/shards/direct-provider.ts) go through
 * it, so both recover from the same losses the same way:
 *   - a worker that dies mid-shard: BullMQ's stalled-job check hands the shard to another worker once the
 *     lock expires;
 *   - a Redis that restarts empty: the poll finds an issued shard missing and adds it again (its payload is
 *     still in hand);
 *   - a result that does not fit the shard: counted as an attempt, and the shard goes again.
 * A shard that fails every attempt rejects with an error naming it. Results are taken only from BullMQ jobs
 * this process added (ids carry its random run token and are kept in memory).
 */
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import type { Settings } from '../config.js';
import { EvaporateError } from '../errors.js';

type ShardSettings = Settings['shards'];

/** One shard as its owner describes it to the issuer. */
export interface ShardSpec<R> {
  /** BullMQ job id stem, unique per coordinator run and shard (a generation number is appended). */
  id: string;
  /** The BullMQ job's data. */
  payload: unknown;
  /** Says what the shard is in messages: "shard batch:3 of job 7 (documents 1 to 50)". */
  label: string;
  /** Checks a returned result; throws (a ShardProtocolError) when it does not fit the shard. */
  check(result: unknown): R;
  /** Runs before every (re-)enqueue, e.g. to (re)write what a flushed Redis lost. */
  beforeAdd?(): Promise<void>;
  /** Runs once the shard is settled (result taken, failed for good, or abandoned), e.g. to delete what it left in Redis. */
  settled?(): void;
}

/** What the coordinator measured about a queue (the scale-out bench reads it). */
export interface QueueStats {
  issued: number;
  accepted: number;
  reissued: number;
  refused: number;
}

interface Issued {
  spec: ShardSpec<unknown>;
  /** Times this shard was put on the queue (a re-enqueue after a loss or a refused result adds one). */
  generation: number;
  jobId: string;
  adding: boolean;
  checking: boolean;
  resolve(out: unknown): void;
  reject(error: unknown): void;
}

export const connectionOf = (url: string) => ({ url, maxRetriesPerRequest: null });

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

export class ShardIssuer {
  readonly stats: QueueStats = { issued: 0, accepted: 0, reissued: 0, refused: 0 };
  readonly redis: Redis;
  private readonly queue: Queue;
  private readonly events: QueueEvents;
  private readonly issued = new Map<string, Issued>();
  private readonly waiting: (() => void)[] = [];
  private inFlight = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly settings: ShardSettings,
    readonly queueName: string,
    private readonly jobName: string,
    /** Shards of this queue in Redis at once. */
    private readonly maxInFlight: number,
    private readonly log: (line: string) => void = () => {},
  ) {
    if (!settings.redisUrl) throw new Error('ShardIssuer needs settings.shards.redisUrl');
    const connection = connectionOf(settings.redisUrl);
    this.queue = new Queue(queueName, { connection, prefix: settings.prefix, streams: { events: { maxLen: EVENTS_KEPT } } });
    this.events = new QueueEvents(queueName, { connection, prefix: settings.prefix });
    this.redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
    // A completed event carries the result (BullMQ writes it with the completion, atomically), so it is taken
    // from there rather than read from the job again; failures and anything missed go through check().
    this.events.on('completed', ({ jobId, returnvalue }: { jobId: string; returnvalue: unknown }) => {
      const entry = this.issued.get(jobId);
      if (entry && !entry.adding) this.accept(entry, returnvalue);
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

  /**
   * Waits for a slot among the shards in flight, then builds the shard (so only shards in flight sit in
   * memory), issues it and resolves with its checked result.
   */
  async issue<R>(build: () => ShardSpec<R>, signal: AbortSignal): Promise<R> {
    await this.acquire(signal);
    try {
      const spec = build() as ShardSpec<unknown>;
      return (await new Promise<unknown>((resolve, reject) => {
        const entry: Issued = { spec, generation: 0, jobId: '', adding: false, checking: false, resolve, reject };
        const onAbort = () => {
          this.issued.delete(entry.jobId);
          void this.queue.remove(entry.jobId).catch(() => {});
          spec.settled?.();
          reject(signal.reason);
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        entry.resolve = (out) => {
          signal.removeEventListener('abort', onAbort);
          resolve(out);
        };
        entry.reject = (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        };
        void this.add(entry);
      })) as R;
    } finally {
      this.release();
    }
  }

  /** Connected `evaporate worker` processes listening to this queue (BullMQ names their connections). */
  async workerCount(): Promise<number> {
    return (await this.queue.getWorkers()).length;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    // A clean close waits for Redis; an unreachable one would hold the process's shutdown forever.
    // quit() lets commands already sent (a settled shard's clean-up) finish first.
    const closed = Promise.allSettled([this.events.close(), this.queue.close(), this.redis.quit()]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
    // Not awaited: against an unreachable Redis, BullMQ's disconnect waits as well.
    void this.events.disconnect().catch(() => {});
    void this.queue.disconnect().catch(() => {});
    this.redis.disconnect();
  }

  private async add(entry: Issued): Promise<void> {
    if (entry.generation > 0) this.issued.delete(entry.jobId);
    entry.generation++;
    entry.jobId = `${entry.spec.id}.g${entry.generation}`;
    entry.adding = true;
    this.issued.set(entry.jobId, entry);
    try {
      await entry.spec.beforeAdd?.();
      await this.queue.add(this.jobName, entry.spec.payload, {
        jobId: entry.jobId,
        attempts: this.settings.attempts,
        backoff: { type: 'exponential', delay: this.settings.backoffMs },
        // The coordinator removes a result once read; these ages clear the ones nobody reads (a coordinator
        // that crashed leaves its shards behind, and its successor issues its own under a new token).
        removeOnComplete: { age: ORPHAN_RESULT_SECONDS },
        removeOnFail: { age: ORPHAN_RESULT_SECONDS },
      });
      this.stats.issued++;
    } catch {
      // Redis unreachable: the poll tries again (the entry is still issued, and not in Redis).
    } finally {
      entry.adding = false;
    }
  }

  /** Looks the shard up in Redis: done, failed for good, missing (Redis lost it) or still under way. */
  private async check(entry: Issued): Promise<void> {
    if (entry.adding || entry.checking || this.issued.get(entry.jobId) !== entry) return;
    entry.checking = true;
    try {
      // State first, then the fields: a result read before the state was would miss one written in between.
      // Only the result fields are read, not the shard's payload back.
      const state = await this.queue.getJobState(entry.jobId);
      if (this.issued.get(entry.jobId) !== entry) return;
      if (state !== 'unknown' && state !== 'completed' && state !== 'failed') return;
      const [returnvalue, failedReason, attemptsMade] =
        state === 'unknown' ? [null, null, null] : await this.redis.hmget(this.queue.toKey(entry.jobId), 'returnvalue', 'failedReason', 'attemptsMade');
      if (this.issued.get(entry.jobId) !== entry) return;
      if (state === 'unknown' || (state === 'completed' && returnvalue === null)) {
        this.stats.reissued++;
        this.log(`${entry.spec.label} is missing from Redis; enqueueing it again`);
        return await this.add(entry);
      }
      if (state === 'failed') return this.fail(entry, failedReason || 'no reason given', Number(attemptsMade ?? 0));
      let parsed: unknown;
      try {
        parsed = JSON.parse(returnvalue!);
      } catch {
        parsed = undefined;
      }
      this.accept(entry, parsed);
    } catch {
      // Redis unreachable right now: the next poll looks again.
    } finally {
      entry.checking = false;
    }
  }

  /** Takes a finished shard's result if it fits the shard; otherwise the shard counts an attempt and goes again. */
  private accept(entry: Issued, result: unknown): void {
    if (this.issued.get(entry.jobId) !== entry) return;
    let out: unknown;
    try {
      out = entry.spec.check(result);
    } catch (e) {
      this.stats.refused++;
      if (entry.generation >= this.settings.attempts) return this.fail(entry, `its result was refused: ${(e as Error).message}`, entry.generation);
      this.log(`${entry.spec.label}: result refused (${(e as Error).message}); enqueueing it again`);
      void this.add(entry);
      return;
    }
    this.issued.delete(entry.jobId);
    this.stats.accepted++;
    void this.queue.remove(entry.jobId).catch(() => {});
    entry.spec.settled?.();
    entry.resolve(out);
  }

  private fail(entry: Issued, reason: string, attempts: number): void {
    this.issued.delete(entry.jobId);
    entry.spec.settled?.();
    const label = entry.spec.label;
    entry.reject(new EvaporateError('shard_failed', `${label[0].toUpperCase()}${label.slice(1)} failed after ${attempts} attempt(s): ${reason}`, 500));
  }

  private acquire(signal: AbortSignal): Promise<void> {
    if (this.inFlight < this.maxInFlight) {
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
