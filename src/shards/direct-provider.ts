/**
 * Direct extraction served by `evaporate worker` processes: an LlmProvider whose calls are gathered into
 * shards of up to `directCalls` requests on their own BullMQ queue (only workers with an extraction model
 * listen to it), run there by the worker's own model (the local engine or an endpoint), and answered with
 * each call's completion and usage.
 *
 * It is a raw provider, so the coordinator wraps it in the usual stack (src/app/shards.ts): the cache, the
 * ledger and the budget stay in the coordinator, beside the database. A cached request never reaches the queue,
 * every answer is counted against the job once however many times a lost shard ran, and the budget is checked
 * before a call is issued. Prompts travel instead of documents: a prompt is the few passages direct extraction
 * shows the model (a few KB), where a document can be hundreds.
 */
import type { Settings } from '../config.js';
import { LlmError } from '../llm/errors.js';
import type { CallContext, CompletionRequest, CompletionResult, LlmProvider } from '../llm/types.js';
import { runToken } from './coordinator.js';
import { ShardIssuer, type QueueStats } from './issuer.js';
import { checkDirectOutputs, DIRECT_JOB_NAME, directQueueName, PROTOCOL_VERSION, toWire, type DirectShardPayload } from './protocol.js';

interface PendingCall {
  request: CompletionRequest;
  resolve(result: CompletionResult): void;
  reject(error: unknown): void;
}

interface JobCalls {
  calls: PendingCall[];
  signal: AbortSignal;
  timer?: NodeJS.Timeout;
}

/** Calls that arrive within this long of each other share a shard (direct extraction issues them together). */
const LINGER_MS = 20;

const never = new AbortController().signal;

export class QueueLlmProvider implements LlmProvider {
  readonly name: string;
  private readonly issuer: ShardIssuer;
  private readonly runs = new Map<number, string>();
  private readonly pending = new Map<number, JobCalls>();
  private readonly shardsIssued = new Map<number, number>();
  private readonly warned = new Set<number>();

  constructor(
    private readonly settings: Settings['shards'],
    private readonly log: (line: string) => void = () => {},
  ) {
    const queue = directQueueName(settings.queue);
    this.name = `workers@${queue}`;
    // Shards in flight: enough for every call the coordinator's limiter lets through at once.
    this.issuer = new ShardIssuer(settings, queue, DIRECT_JOB_NAME, Math.max(1, Math.ceil(settings.directInFlight / settings.directCalls)), log);
  }

  get stats(): QueueStats {
    return this.issuer.stats;
  }

  complete(request: CompletionRequest, context: CallContext = {}): Promise<CompletionResult> {
    const jobId = context.jobId ?? 0;
    return new Promise<CompletionResult>((resolve, reject) => {
      let job = this.pending.get(jobId);
      if (!job) this.pending.set(jobId, (job = { calls: [], signal: context.signal ?? never }));
      job.calls.push({ request, resolve, reject });
      if (job.calls.length >= this.settings.directCalls) this.flush(jobId);
      else job.timer ??= setTimeout(() => this.flush(jobId), LINGER_MS);
    });
  }

  close(): Promise<void> {
    for (const job of this.pending.values()) clearTimeout(job.timer);
    return this.issuer.close();
  }

  private flush(jobId: number): void {
    const job = this.pending.get(jobId);
    if (!job) return;
    clearTimeout(job.timer);
    this.pending.delete(jobId);
    const calls = job.calls;
    const index = this.shardsIssued.get(jobId) ?? 0;
    this.shardsIssued.set(jobId, index + 1);
    const run = runToken(this.runs, jobId);
    void this.warnWithoutWorkers(jobId);
    this.issuer
      .issue(() => {
        const payload: DirectShardPayload = { v: PROTOCOL_VERSION, run, jobId, index, calls: calls.map((c) => toWire(c.request)) };
        return {
          id: `${run}.d${index}`,
          payload,
          label: `direct-extraction shard d${index} of job ${jobId} (${calls.length} calls)`,
          check: (result) => checkDirectOutputs(calls.length, result),
        };
      }, job.signal)
      .then(
        (outcomes) =>
          outcomes.forEach((o, i) => {
            if ('ok' in o) calls[i].resolve({ ...o.ok, cached: false });
            // The worker's stack already retried what could be; the code (llm_truncated, say) is what the caller reads.
            else calls[i].reject(new LlmError(o.error.code, o.error.message, 502, false));
          }),
        (error: unknown) => calls.forEach((c) => c.reject(error)),
      );
  }

  /** A job whose calls no worker can serve says so (once) rather than waiting in silence. */
  private async warnWithoutWorkers(jobId: number): Promise<void> {
    if (this.warned.has(jobId)) return;
    this.warned.add(jobId);
    try {
      if ((await this.issuer.workerCount()) === 0)
        this.log(
          `job ${jobId}: no worker with an extraction model is listening on queue ${this.issuer.queueName}; its direct-extraction calls wait for one (start \`evaporate worker\` with EVAPORATE_MODEL_EXTRACTION or EVAPORATE_LOCAL_MODEL_DIR set)`,
        );
    } catch {
      // Redis unreachable: the issuer says so.
    }
  }
}
