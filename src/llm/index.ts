/**
 * The one way to get a language model: createLlm() composes, outermost first,
 *   model routing (role -> model; 'llm_not_configured' when none)
 *   -> cache (hits logged at zero cost) -> budget (refuse before sending) -> ledger (every call)
 *   -> retry (backoff + jitter, Retry-After) -> rate limit (concurrency, RPM, TPM) -> timeout -> provider.
 * Retries sit outside the limiter so backoff sleeps hold no slot, and inside the budget so a call's
 * reservation covers all of its attempts. composeLlm() wraps any provider (e.g. the local engine) the same way.
 */
import type { Settings } from '../config.js';
import type { Db } from '../store/database.js';
import { withBudget, type Budget } from './budget.js';
import { withCache } from './cache.js';
import { llmConfigFromEnv, notConfiguredError, type LlmConfig } from './config.js';
import { Ledger, withLedger } from './ledger.js';
import { RateLimiter, withRateLimit } from './limiter.js';
import { OpenAiProvider } from './openai-provider.js';
import { loadPrices, type PriceTable } from './pricing.js';
import { withRetry, type RetryOptions } from './retry.js';
import { withTimeout } from './timeout.js';
import type { CallContext, CompletionRequest, CompletionResult, LlmProvider, ModelRole } from './types.js';

export type { Budget } from './budget.js';
export { getJobBudget, setJobBudget } from './budget.js';
export { describeLlmConfig, isConfigured, llmConfigFromEnv, type LlmConfig } from './config.js';
export { codeBlocks, extractAttributeValues, extractFunctionSource, extractJson, extractList, extractValue } from './parse.js';
export { LlmError } from './errors.js';
export { jobLlmUsage, Ledger, type ModelUsage, type UsageTotals } from './ledger.js';
export { RateLimiter } from './limiter.js';
export { OpenAiProvider } from './openai-provider.js';
export { DEFAULT_PRICES, loadPrices, type PriceTable } from './pricing.js';

export interface ComposeOptions {
  db: Db;
  settings: Settings;
  /** Default job for calls whose context names none. */
  jobId?: number;
  /** Overrides the job's stored budget and the default budget settings. */
  budget?: Budget;
  /** Model per role for requests that name no model; `default` serves requests without a role. */
  models: Partial<Record<ModelRole | 'default', string>>;
  /** Variables to name in 'llm_not_configured' when a role has no model. */
  missingVars?: (role: ModelRole | undefined) => string[];
  /** Share one limiter between stacks that talk to the same endpoint. */
  limiter?: RateLimiter;
  prices?: PriceTable;
  retry?: Partial<RetryOptions>;
}

export interface CreateLlmOptions extends Omit<ComposeOptions, 'models'> {
  /** Defaults to llmConfigFromEnv(). */
  config?: LlmConfig;
  /** Replaces the OpenAI-compatible provider (e.g. the local engine); still cached, counted and budgeted. */
  provider?: LlmProvider;
  models?: ComposeOptions['models'];
}

// The endpoint's limits are per account: every stack in this process that talks to one endpoint shares them.
const sharedLimiters = new Map<string, RateLimiter>();

export function sharedLimiter(key: string, settings: Settings): RateLimiter {
  const l = settings.llm;
  const id = `${key}|${l.concurrency}|${l.requestsPerMinute}|${l.tokensPerMinute}`;
  let limiter = sharedLimiters.get(id);
  if (!limiter) {
    limiter = new RateLimiter({
      concurrency: l.concurrency,
      requestsPerMinute: l.requestsPerMinute,
      tokensPerMinute: l.tokensPerMinute,
      defaultMaxTokens: l.defaultMaxTokens,
    });
    sharedLimiters.set(id, limiter);
  }
  return limiter;
}

const roleVariable = (role: ModelRole | undefined) => (role ? `EVAPORATE_MODEL_${role.toUpperCase()}` : 'EVAPORATE_MODEL');

function withModels(inner: LlmProvider, options: ComposeOptions): LlmProvider {
  const modelFor = (role: ModelRole | undefined) => (role ? options.models[role] : undefined) ?? options.models.default;
  const missingVars = (role: ModelRole | undefined) => options.missingVars?.(role) ?? [roleVariable(role)];
  return {
    name: inner.name,
    missingFor: (role) => (modelFor(role) ? [] : missingVars(role)),
    complete(request: CompletionRequest, context: CallContext = {}): Promise<CompletionResult> {
      const model = request.model ?? modelFor(request.role);
      if (!model) return Promise.reject(notConfiguredError(request.role, missingVars(request.role)));
      const jobId = context.jobId ?? options.jobId;
      return inner.complete({ ...request, model }, { ...context, jobId });
    },
  };
}

/**
 * For a job to call before doing any work: throws 'llm_not_configured' naming every variable still to set
 * for the roles it will need, so it fails at once rather than halfway through. `hint` ends the sentence.
 */
export function requireModels(llm: LlmProvider, roles: readonly ModelRole[], hint = ''): void {
  const missing = roles.filter((r) => (llm.missingFor?.(r) ?? []).length > 0);
  if (missing.length === 0) return;
  const vars = [...new Set(missing.flatMap((r) => llm.missingFor!(r)))];
  throw notConfiguredError(missing.length === 1 ? missing[0] : undefined, vars, hint);
}

function endpointProvider(config: LlmConfig, settings: Settings): OpenAiProvider {
  return new OpenAiProvider({
    baseURL: config.baseURL,
    apiKey: config.apiKey,
    defaultMaxTokens: settings.llm.defaultMaxTokens,
    // 0 = no limit reaches the transport too; otherwise the timeout wrapper decides and these are backstops.
    clientTimeoutMs: settings.llm.timeoutMs > 0 ? settings.llm.timeoutMs * 2 : 0,
  });
}

/** Timeout, rate limit and retry: what every process that talks to a model wraps around it. */
function transportStack(raw: LlmProvider, settings: Settings, limiter?: RateLimiter, retry?: Partial<RetryOptions>): LlmProvider {
  const l = settings.llm;
  let p: LlmProvider = withTimeout(raw, l.timeoutMs);
  p = withRateLimit(p, limiter ?? sharedLimiter(raw.name, settings));
  return withRetry(p, { maxRetries: l.maxRetries, baseDelayMs: l.retryBaseMs, maxDelayMs: l.retryMaxMs, ...retry });
}

/**
 * The model of an `evaporate worker` that serves direct-extraction shards: timeout, rate limit and retry
 * only. Cache, ledger and budget belong to the coordinator, which owns the database and the job's account.
 * Undefined when this process has no extraction model configured. Credentials are read here, once, so the
 * caller may remove them from the environment afterwards.
 */
export function createWorkerLlm(options: { settings: Settings; config?: LlmConfig; provider?: LlmProvider; model?: string; limiter?: RateLimiter }): { provider: LlmProvider; model: string } | undefined {
  const { settings } = options;
  if (options.provider) {
    if (!options.model) throw new Error('createWorkerLlm: a caller-supplied provider needs the model name it serves');
    return { provider: transportStack(options.provider, settings, options.limiter), model: options.model };
  }
  const config = options.config ?? llmConfigFromEnv();
  if (config.missing.extraction.length > 0) return undefined;
  return { provider: transportStack(endpointProvider(config, settings), settings, options.limiter), model: config.models.extraction! };
}

/** Wraps a raw provider in the full stack. */
export function composeLlm(raw: LlmProvider, options: ComposeOptions): LlmProvider {
  const l = options.settings.llm;
  const prices = options.prices ?? loadPrices(l.prices);
  const ledger = new Ledger(options.db);
  let p = transportStack(raw, options.settings, options.limiter, options.retry);
  p = withLedger(p, ledger, prices);
  p = withBudget(p, {
    ledger,
    prices,
    defaultMaxTokens: l.defaultMaxTokens,
    budget: options.budget,
    defaultBudget: { maxTokens: l.budgetTokens, maxUsd: l.budgetUsd },
  });
  if (l.cache) p = withCache(p, options.db, { ledger, prices, defaultMaxTokens: l.defaultMaxTokens });
  return withModels(p, options);
}

/**
 * The composed provider for the configured OpenAI-compatible endpoint. Never throws for missing
 * configuration: the service starts, and a call that needs a model fails with 'llm_not_configured'.
 */
export function createLlm(options: CreateLlmOptions): LlmProvider {
  const config = options.config ?? llmConfigFromEnv();
  const l = options.settings.llm;
  // A caller-supplied provider needs no OpenAI key, only model names.
  const missing = (role: ModelRole) =>
    options.provider ? config.missing[role].filter((v) => v.startsWith('EVAPORATE_MODEL')) : config.missing[role];
  const ready = (role: ModelRole) => missing(role).length === 0;
  const models: ComposeOptions['models'] = options.models ?? {
    synthesis: ready('synthesis') ? config.models.synthesis : undefined,
    extraction: ready('extraction') ? config.models.extraction : undefined,
    schema: ready('schema') ? config.models.schema : undefined,
    default: ready('extraction') ? config.models.extraction : undefined,
  };
  const raw = options.provider ?? endpointProvider(config, options.settings);
  return composeLlm(raw, {
    ...options,
    models,
    missingVars: (role) => missing(role ?? 'extraction'),
    limiter: options.limiter ?? sharedLimiter(raw.name, options.settings),
  });
}

/**
 * Sends each role to its own composed stack, e.g. synthesis and schema to an OpenAI-compatible endpoint
 * and extraction to the local engine (each stack built with composeLlm/createLlm, so each is cached,
 * counted and budgeted). Requests without a role go to `default`, else to extraction.
 */
export function routeByRole(stacks: Partial<Record<ModelRole | 'default', LlmProvider>>): LlmProvider {
  const fallback = stacks.default ?? stacks.extraction;
  const targetFor = (role: ModelRole | undefined) => (role ? stacks[role] : undefined) ?? fallback;
  return {
    name: 'router',
    missingFor(role) {
      const target = targetFor(role);
      return target ? (target.missingFor?.(role) ?? []) : [roleVariable(role)];
    },
    complete(request: CompletionRequest, context?: CallContext): Promise<CompletionResult> {
      const target = targetFor(request.role);
      if (!target) return Promise.reject(notConfiguredError(request.role, [roleVariable(request.role)]));
      return target.complete(request, context);
    },
  };
}
