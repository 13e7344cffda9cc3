/**
 * The ledger: one llm_usage row per logical call (cache hits at zero cost, failures with their code),
 * and the per-job totals that jobs, the REST API and budgets read.
 */
import type { Db } from '../store/database.js';
import { isEvaporateError } from '../errors.js';
import { withAttemptTally, type AttemptTally } from './attempts.js';
import { costOf, type PriceTable } from './pricing.js';
import { countPromptTokens } from './tokens.js';
import type { CallContext, CompletionRequest, CompletionResult, LlmProvider } from './types.js';

export interface UsageRow {
  jobId: number | undefined;
  requestHash?: string;
  provider: string;
  model: string;
  role?: string;
  cached: boolean;
  candidates: number;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  latencyMs: number;
  status: 'ok' | 'error';
  errorCode?: string;
  /** Requests sent for this call, retries included (0 for a cache hit; default 1, or 0 when cached). */
  attempts?: number;
  /** Of those, the ones that failed (default: 1 for an error row, else 0). */
  failedAttempts?: number;
  /** The prompt's tokens counted locally (countPromptTokens), cache hits included. */
  countedPromptTokens?: number;
}

export interface UsageTotals {
  /** Logical calls, cache hits included. */
  calls: number;
  cacheHits: number;
  /** HTTP requests actually sent to an endpoint: retries count, cache hits do not. */
  requests: number;
  /** Requests that failed (a call that succeeded on its third attempt adds 2). */
  errors: number;
  /** Logical calls that failed after all their attempts. */
  failedCalls: number;
  /** Prompt tokens of every logical call (cache hits included) counted locally, as the direct-extraction estimate is. */
  countedPromptTokens: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  costUsd: number;
  latencyMs: number;
}

export interface ModelUsage extends UsageTotals {
  model: string;
}

type Running = Omit<UsageTotals, 'totalTokens'> & { lastId: number };
const runningTotals = new WeakMap<Db, Map<number | null, Running>>();

export class Ledger {
  private readonly insert;
  private readonly totals;
  private readonly byModel;

  constructor(readonly db: Db) {
    this.insert = db.prepare(
      `INSERT INTO llm_usage (job_id, request_hash, provider, model, role, cached, candidates, prompt_tokens,
         completion_tokens, cost_usd, latency_ms, status, error_code, attempts, failed_attempts, counted_prompt_tokens)
       VALUES (@jobId, @requestHash, @provider, @model, @role, @cached, @candidates, @promptTokens,
         @completionTokens, @costUsd, @latencyMs, @status, @errorCode, @attempts, @failedAttempts, @countedPromptTokens)`,
    );
    const select = `SELECT count(*) AS calls, coalesce(sum(cached), 0) AS cacheHits,
        coalesce(sum(attempts), 0) AS requests, coalesce(sum(failed_attempts), 0) AS errors,
        coalesce(sum(status = 'error'), 0) AS failedCalls, coalesce(sum(counted_prompt_tokens), 0) AS countedPromptTokens, coalesce(sum(prompt_tokens), 0) AS promptTokens,
        coalesce(sum(completion_tokens), 0) AS completionTokens, coalesce(sum(cost_usd), 0) AS costUsd,
        coalesce(sum(latency_ms), 0) AS latencyMs`;
    this.totals = db.prepare(`${select}, coalesce(max(id), @after) AS lastId FROM llm_usage WHERE job_id IS @jobId AND id > @after`);
    this.byModel = db.prepare(`${select}, model FROM llm_usage WHERE job_id IS @jobId GROUP BY model ORDER BY model`);
  }

  record(row: UsageRow): void {
    this.insert.run({
      jobId: row.jobId ?? null,
      requestHash: row.requestHash ?? null,
      provider: row.provider,
      model: row.model,
      role: row.role ?? null,
      cached: row.cached ? 1 : 0,
      candidates: row.candidates,
      promptTokens: row.promptTokens,
      completionTokens: row.completionTokens,
      costUsd: row.costUsd,
      latencyMs: Math.round(row.latencyMs),
      status: row.status,
      errorCode: row.errorCode ?? null,
      attempts: row.attempts ?? (row.cached ? 0 : 1),
      failedAttempts: row.failedAttempts ?? (row.status === 'error' ? 1 : 0),
      countedPromptTokens: row.countedPromptTokens ?? 0,
    });
  }

  /**
   * Totals for one job (undefined = calls made outside any job). The budget asks before every call, so
   * totals are kept per database and only rows newer than the last look are summed: O(new rows), not O(job).
   */
  jobTotals(jobId: number | undefined): UsageTotals {
    let perJob = runningTotals.get(this.db);
    if (!perJob) {
      perJob = new Map();
      runningTotals.set(this.db, perJob);
    }
    const key = jobId ?? null;
    const known = perJob.get(key) ?? { lastId: 0, calls: 0, cacheHits: 0, requests: 0, errors: 0, failedCalls: 0, countedPromptTokens: 0, promptTokens: 0, completionTokens: 0, costUsd: 0, latencyMs: 0 };
    const r = this.totals.get({ jobId: key, after: known.lastId }) as Omit<UsageTotals, 'totalTokens'> & { lastId: number };
    const next = {
      lastId: r.lastId,
      calls: known.calls + r.calls,
      cacheHits: known.cacheHits + r.cacheHits,
      requests: known.requests + r.requests,
      errors: known.errors + r.errors,
      failedCalls: known.failedCalls + r.failedCalls,
      countedPromptTokens: known.countedPromptTokens + r.countedPromptTokens,
      promptTokens: known.promptTokens + r.promptTokens,
      completionTokens: known.completionTokens + r.completionTokens,
      costUsd: known.costUsd + r.costUsd,
      latencyMs: known.latencyMs + r.latencyMs,
    };
    perJob.set(key, next);
    const { lastId: _lastId, ...totals } = next;
    return { ...totals, totalTokens: totals.promptTokens + totals.completionTokens };
  }

  jobTotalsByModel(jobId: number | undefined): ModelUsage[] {
    return (this.byModel.all({ jobId: jobId ?? null }) as Omit<ModelUsage, 'totalTokens'>[]).map((r) => ({
      ...r,
      totalTokens: r.promptTokens + r.completionTokens,
    }));
  }
}

/** Per-job totals without building a provider stack (for the REST API and CLI). */
export function jobLlmUsage(db: Db, jobId: number): UsageTotals & { byModel: ModelUsage[] } {
  const ledger = new Ledger(db);
  return { ...ledger.jobTotals(jobId), byModel: ledger.jobTotalsByModel(jobId) };
}

/**
 * Records every call that reaches the provider, successful or not. Sits inside the budget check so a
 * call's real cost is in the ledger before its budget reservation is released.
 */
export function withLedger(inner: LlmProvider, ledger: Ledger, prices: PriceTable): LlmProvider {
  return {
    name: inner.name,
    async complete(request: CompletionRequest, context: CallContext = {}): Promise<CompletionResult> {
      const started = performance.now();
      const base = {
        jobId: context.jobId,
        provider: inner.name,
        role: request.role,
        candidates: Math.max(1, request.n ?? 1),
        requestHash: hashOf(context),
        countedPromptTokens: countPromptTokens(request.messages),
      };
      const tally: AttemptTally = { sent: 0, failed: 0 };
      // A provider stack without the retry wrapper sends exactly one request per call.
      const counted = () => (tally.sent > 0 ? tally : undefined);
      try {
        const result = await inner.complete(request, withAttemptTally(context, tally));
        ledger.record({
          ...base,
          attempts: result.cached ? 0 : (counted()?.sent ?? 1),
          failedAttempts: counted()?.failed ?? 0,
          model: result.model,
          cached: result.cached,
          promptTokens: result.cached ? 0 : result.usage.promptTokens,
          completionTokens: result.cached ? 0 : result.usage.completionTokens,
          costUsd: result.cached ? 0 : costOf(prices, request.model ?? result.model, result.usage),
          latencyMs: result.latencyMs,
          status: 'ok',
        });
        return result;
      } catch (err) {
        ledger.record({
          ...base,
          model: request.model ?? '',
          cached: false,
          promptTokens: 0,
          completionTokens: 0,
          costUsd: 0,
          latencyMs: performance.now() - started,
          status: 'error',
          errorCode: isEvaporateError(err) ? err.code : 'llm_error',
          attempts: counted()?.sent ?? 1,
          failedAttempts: counted()?.failed ?? 1,
        });
        throw err;
      }
    },
  };
}

/** The cache passes the request hash down so ledger rows can be joined with llm_calls. */
const HASH = Symbol('requestHash');
export type HashedContext = CallContext & { [HASH]?: string };
export function withHash(context: CallContext, hash: string): CallContext {
  return { ...context, [HASH]: hash } as HashedContext;
}
function hashOf(context: CallContext): string | undefined {
  return (context as HashedContext)[HASH];
}
