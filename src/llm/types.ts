/**
 * The only way the pipeline talks to language models. Providers (OpenAI-compatible, local BASED)
 * implement LlmProvider; cache, ledger, budget, retry and rate limits wrap it with the same interface.
 */
export type ModelRole = 'synthesis' | 'extraction' | 'schema';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface CompletionRequest {
  messages: ChatMessage[];
  /** Which configured model serves this call; the provider maps a role to a model name. */
  role?: ModelRole;
  /** Overrides the role's model. */
  model?: string;
  temperature?: number;
  maxTokens?: number;
  stop?: string[];
  /** Number of candidate completions. */
  n?: number;
  /** Ask for a JSON object response where the endpoint supports it. */
  jsonMode?: boolean;
  /**
   * Sampling seed, sent where the endpoint supports it. Also part of the cache key: callers that want
   * fresh samples for an otherwise identical request vary the seed instead of bypassing the cache.
   */
  seed?: number;
  /**
   * Fail with 'llm_truncated' (not retried as is) when an answer stopped at max_tokens, instead of returning
   * the cut text: for answers that are only usable whole (a JSON value). Not part of the cache key.
   */
  rejectTruncated?: boolean;
}

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface CompletionResult {
  /** One text per candidate (length n). */
  texts: string[];
  usage: TokenUsage;
  model: string;
  latencyMs: number;
  /** True when served from the content-addressed cache at no cost. */
  cached: boolean;
}

export interface CallContext {
  /** Calls are counted and budgeted per job. */
  jobId?: number;
  signal?: AbortSignal;
}

export interface LlmProvider {
  readonly name: string;
  complete(request: CompletionRequest, context?: CallContext): Promise<CompletionResult>;
  /**
   * The environment variables still to set before a request of this role can be served ([] = ready), so a job
   * can fail before any work rather than halfway through. Left out by providers that serve any role.
   */
  missingFor?(role: ModelRole): string[];
}
