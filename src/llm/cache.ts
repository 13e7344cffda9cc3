/**
 * Content-addressed response cache in SQLite (llm_calls). The key hashes everything that shapes the
 * answer: provider, model, messages and sampling settings; so a rerun of a job, even after a restart,
 * costs no calls. Identical requests in flight at once share one call. Every hit is still written to
 * the ledger, at zero tokens and zero cost, so per-job counts show what the cache saved.
 */
import crypto from 'node:crypto';
import type { Db } from '../store/database.js';
import { withHash, type Ledger } from './ledger.js';
import { costOf, type PriceTable } from './pricing.js';
import { countPromptTokens } from './tokens.js';
import type { CallContext, CompletionRequest, CompletionResult, LlmProvider } from './types.js';

export function requestHash(provider: string, request: CompletionRequest, defaultMaxTokens: number): string {
  // Fixed field order and explicit nulls, so equal requests always serialize alike.
  const canonical = JSON.stringify([
    'v1',
    provider,
    request.model ?? null,
    request.messages.map((m) => [m.role, m.content]),
    request.temperature ?? null,
    request.maxTokens ?? defaultMaxTokens,
    request.stop ?? null,
    request.n ?? 1,
    request.jsonMode ?? false,
    request.seed ?? null,
  ]);
  return crypto.createHash('sha256').update(canonical).digest('hex');
}

interface Stored {
  texts: string[];
  model: string;
}

export interface CacheOptions {
  ledger: Ledger;
  prices: PriceTable;
  defaultMaxTokens: number;
}

export function withCache(inner: LlmProvider, db: Db, options: CacheOptions): LlmProvider {
  const lookup = db.prepare(
    'SELECT response, model, prompt_tokens AS promptTokens, completion_tokens AS completionTokens FROM llm_calls WHERE request_hash = ?',
  );
  const store = db.prepare(
    `INSERT INTO llm_calls (request_hash, provider, model, prompt_tokens, completion_tokens, cost_usd, latency_ms, response, job_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(request_hash) DO NOTHING`,
  );
  const pending = new Map<string, Promise<CompletionResult>>();

  function hit(key: string, request: CompletionRequest, context: CallContext, result: Omit<CompletionResult, 'cached' | 'latencyMs'>, latencyMs: number): CompletionResult {
    options.ledger.record({
      jobId: context.jobId,
      requestHash: key,
      provider: inner.name,
      model: result.model,
      role: request.role,
      cached: true,
      candidates: result.texts.length,
      promptTokens: 0,
      completionTokens: 0,
      costUsd: 0,
      latencyMs,
      status: 'ok',
      countedPromptTokens: countPromptTokens(request.messages),
    });
    return { ...result, latencyMs, cached: true };
  }

  return {
    name: inner.name,
    async complete(request: CompletionRequest, context: CallContext = {}): Promise<CompletionResult> {
      const started = performance.now();
      const key = requestHash(inner.name, request, options.defaultMaxTokens);
      const row = lookup.get(key) as { response: string; model: string; promptTokens: number; completionTokens: number } | undefined;
      if (row) {
        const stored = JSON.parse(row.response) as Stored;
        return hit(key, request, context, {
          texts: stored.texts,
          model: stored.model,
          usage: { promptTokens: row.promptTokens, completionTokens: row.completionTokens },
        }, performance.now() - started);
      }
      const shared = pending.get(key);
      if (shared) {
        const result = await shared;
        return hit(key, request, context, result, performance.now() - started);
      }
      const call = inner.complete(request, withHash(context, key));
      pending.set(key, call);
      try {
        const result = await call;
        const stored: Stored = { texts: result.texts, model: result.model };
        store.run(
          key,
          inner.name,
          result.model,
          result.usage.promptTokens,
          result.usage.completionTokens,
          costOf(options.prices, request.model ?? result.model, result.usage),
          Math.round(result.latencyMs),
          JSON.stringify(stored),
          context.jobId ?? null,
        );
        return result;
      } finally {
        pending.delete(key);
      }
    },
  };
}
