/**
 * Per-job spending limits in tokens and/or USD, enforced before a call is sent: what the job has spent
 * (the ledger) plus what its calls in flight may still spend (reservations) plus this call's worst
 * case (prompt tokens + max_tokens x n) must fit, or the call is refused with 'budget_exceeded'.
 */
import type { Db } from '../store/database.js';
import { EvaporateError } from '../errors.js';
import { worstCaseUsage } from './estimate.js';
import type { Ledger } from './ledger.js';
import { costOf, type PriceTable } from './pricing.js';
import type { CallContext, CompletionRequest, CompletionResult, LlmProvider } from './types.js';

export interface Budget {
  /** Prompt + completion tokens; undefined or 0 = no limit. */
  maxTokens?: number;
  /** Estimated USD from the price table; undefined or 0 = no limit. */
  maxUsd?: number;
}

export function setJobBudget(db: Db, jobId: number, budget: Budget): void {
  db.prepare(
    `INSERT INTO llm_budgets (job_id, max_tokens, max_usd) VALUES (?, ?, ?)
     ON CONFLICT(job_id) DO UPDATE SET max_tokens = excluded.max_tokens, max_usd = excluded.max_usd,
       updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')`,
  ).run(jobId, budget.maxTokens || null, budget.maxUsd || null);
}

export function getJobBudget(db: Db, jobId: number): Budget | undefined {
  const row = db.prepare('SELECT max_tokens AS maxTokens, max_usd AS maxUsd FROM llm_budgets WHERE job_id = ?').get(jobId) as
    | { maxTokens: number | null; maxUsd: number | null }
    | undefined;
  return row ? { maxTokens: row.maxTokens ?? undefined, maxUsd: row.maxUsd ?? undefined } : undefined;
}

interface Reserved {
  tokens: number;
  usd: number;
}

// Shared by every stack on the same database, so two providers for one job see each other's calls in flight.
const reservationsByDb = new WeakMap<Db, Map<number, Reserved>>();

export interface BudgetOptions {
  ledger: Ledger;
  prices: PriceTable;
  defaultMaxTokens: number;
  /** Wins over the job's stored budget. */
  budget?: Budget;
  /** Used when neither an explicit nor a stored budget exists. */
  defaultBudget?: Budget;
}

function limited(v: number | undefined): v is number {
  return v !== undefined && v > 0;
}

export function withBudget(inner: LlmProvider, options: BudgetOptions): LlmProvider {
  const db = options.ledger.db;
  let reservations = reservationsByDb.get(db);
  if (!reservations) {
    reservations = new Map();
    reservationsByDb.set(db, reservations);
  }
  const held = reservations;
  return {
    name: inner.name,
    async complete(request: CompletionRequest, context: CallContext = {}): Promise<CompletionResult> {
      const jobId = context.jobId;
      const budget =
        options.budget ?? (jobId !== undefined ? getJobBudget(db, jobId) : undefined) ?? options.defaultBudget;
      if (jobId === undefined || !budget || (!limited(budget.maxTokens) && !limited(budget.maxUsd))) {
        return inner.complete(request, context);
      }
      const worst = worstCaseUsage(request, options.defaultMaxTokens);
      const want: Reserved = {
        tokens: worst.promptTokens + worst.completionTokens,
        usd: costOf(options.prices, request.model ?? '', worst),
      };
      const spent = options.ledger.jobTotals(jobId);
      const inFlight = held.get(jobId) ?? { tokens: 0, usd: 0 };
      const tokensAfter = spent.totalTokens + inFlight.tokens + want.tokens;
      const usdAfter = spent.costUsd + inFlight.usd + want.usd;
      if (limited(budget.maxTokens) && tokensAfter > budget.maxTokens) {
        throw new EvaporateError(
          'budget_exceeded',
          `Job ${jobId} would exceed its LLM budget of ${budget.maxTokens} tokens: ${spent.totalTokens} spent, ` +
            `${inFlight.tokens} in flight, and this call may use up to ${want.tokens}. Raise the budget or lower max_tokens.`,
          402,
          { jobId, limitTokens: budget.maxTokens, spentTokens: spent.totalTokens, inFlightTokens: inFlight.tokens, callTokens: want.tokens },
        );
      }
      if (limited(budget.maxUsd) && usdAfter > budget.maxUsd) {
        throw new EvaporateError(
          'budget_exceeded',
          `Job ${jobId} would exceed its LLM budget of $${budget.maxUsd}: $${spent.costUsd.toFixed(4)} spent, ` +
            `$${inFlight.usd.toFixed(4)} in flight, and this call may cost up to $${want.usd.toFixed(4)}. Raise the budget or lower max_tokens.`,
          402,
          { jobId, limitUsd: budget.maxUsd, spentUsd: spent.costUsd, inFlightUsd: inFlight.usd, callUsd: want.usd },
        );
      }
      held.set(jobId, { tokens: inFlight.tokens + want.tokens, usd: inFlight.usd + want.usd });
      try {
        // The ledger (inside this wrapper) has recorded the real usage by the time this returns.
        return await inner.complete(request, context);
      } finally {
        const now = held.get(jobId)!;
        const left = { tokens: now.tokens - want.tokens, usd: now.usd - want.usd };
        if (left.tokens <= 0) held.delete(jobId);
        else held.set(jobId, left);
      }
    },
  };
}
