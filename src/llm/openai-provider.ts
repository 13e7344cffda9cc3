/**
 * LlmProvider over the official `openai` client, for any OpenAI-compatible endpoint (OpenAI, vLLM,
 * llama.cpp server, Ollama). The client's own retries are off: the retry wrapper is the only one, so
 * attempts are counted, budgeted and backed off in one place. Errors become LlmErrors that say whether
 * a retry can help and how long the server asked us to wait.
 */
import OpenAI from 'openai';
import { LlmError, abortedError, timeoutError } from './errors.js';
import { createTransport, isTransportTimeout, SlowEndpointError, type Transport } from './http-transport.js';
import { countTokens, encodingForModel } from './tokens.js';
import type { CallContext, CompletionRequest, CompletionResult, LlmProvider } from './types.js';

export interface OpenAiProviderOptions {
  baseURL?: string;
  apiKey?: string;
  /** Model used when a request names none (the composed stack normally resolves it by role). */
  defaultModel?: string;
  /** Sent as max_tokens when a request sets none. */
  defaultMaxTokens: number;
  /** A backstop only; the timeout wrapper aborts calls much earlier. 0 = none. */
  clientTimeoutMs?: number;
  /**
   * The HTTP agent's header and body timeouts (0 = none). Defaults to clientTimeoutMs, so no hidden
   * transport limit (Node's fetch has a 300 s one) cuts a call the settings allow.
   */
  transportTimeoutMs?: number;
}

// setTimeout's ceiling (about 24.8 days): what "no limit" means for the client's own timer.
const NO_LIMIT_MS = 2 ** 31 - 1;

// Reasoning models reject max_tokens and want max_completion_tokens; most self-hosted servers want max_tokens.
const USES_MAX_COMPLETION_TOKENS = /^(o\d|gpt-5)/i;

export class OpenAiProvider implements LlmProvider {
  /** "openai@<endpoint>": the cache key and the ledger keep endpoints apart, since one model name may be served
   * by different weights on different servers. */
  readonly name: string;
  private readonly client: OpenAI;
  readonly transport: Transport;
  private readonly clientTimeoutMs: number;

  constructor(private readonly options: OpenAiProviderOptions) {
    this.name = `openai@${(options.baseURL ?? 'https://api.openai.com/v1').replace(/\/+$/, '')}`;
    const clientTimeoutMs = options.clientTimeoutMs ?? 10 * 60_000;
    this.clientTimeoutMs = clientTimeoutMs;
    this.transport = createTransport({ timeoutMs: options.transportTimeoutMs ?? clientTimeoutMs });
    this.client = new OpenAI({
      baseURL: options.baseURL,
      // Local endpoints accept any key, but the client insists on one.
      apiKey: options.apiKey ?? 'not-needed',
      maxRetries: 0,
      timeout: clientTimeoutMs > 0 ? Math.min(clientTimeoutMs, NO_LIMIT_MS) : NO_LIMIT_MS,
      fetch: this.transport.fetch,
    });
  }

  async complete(request: CompletionRequest, context: CallContext = {}): Promise<CompletionResult> {
    const model = request.model ?? this.options.defaultModel;
    if (!model) throw new LlmError('llm_no_model', 'No model was named for this call.', 500, false);
    const maxTokens = request.maxTokens ?? this.options.defaultMaxTokens;
    const body: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming = {
      model,
      messages: request.messages.map((m) => ({ role: m.role, content: m.content })),
      ...(USES_MAX_COMPLETION_TOKENS.test(model) ? { max_completion_tokens: maxTokens } : { max_tokens: maxTokens }),
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
      ...(request.stop && request.stop.length > 0 ? { stop: request.stop } : {}),
      ...(request.n !== undefined && request.n !== 1 ? { n: request.n } : {}),
      ...(request.seed !== undefined ? { seed: request.seed } : {}),
      ...(request.jsonMode ? { response_format: { type: 'json_object' as const } } : {}),
    };
    const started = performance.now();
    const wanted = Math.max(1, request.n ?? 1);
    const texts: string[] = [];
    const usage = { promptTokens: 0, completionTokens: 0 };
    let served = model;
    // Some servers (llama.cpp, Ollama) ignore n and return one choice: ask again for the rest.
    for (let round = 0; texts.length < wanted && round < wanted; round++) {
      const remaining = wanted - texts.length;
      const params = { ...body, ...(remaining !== 1 ? { n: remaining } : { n: undefined }) };
      const part = await this.once(params, request, model, context);
      texts.push(...part.texts.slice(0, remaining));
      usage.promptTokens += part.usage.promptTokens;
      usage.completionTokens += part.usage.completionTokens;
      served = part.model;
    }
    return { texts, usage, model: served, latencyMs: Math.round(performance.now() - started), cached: false };
  }

  private async once(
    body: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming,
    request: CompletionRequest,
    model: string,
    context: CallContext,
  ): Promise<{ texts: string[]; usage: { promptTokens: number; completionTokens: number }; model: string }> {
    let response: OpenAI.Chat.ChatCompletion;
    try {
      response = await this.client.chat.completions.create(body, { signal: context.signal });
    } catch (err) {
      throw toLlmError(err, context.signal, { clientMs: this.clientTimeoutMs, transportMs: this.transport.headersTimeoutMs });
    }
    if (!response || !Array.isArray(response.choices) || response.choices.length === 0) {
      throw new LlmError('llm_bad_response', 'The model endpoint answered without any choices.', 502, true);
    }
    const choices = [...response.choices].sort((a, b) => a.index - b.index);
    if (request.rejectTruncated && choices.some((c) => c.finish_reason === 'length')) {
      throw new LlmError(
        'llm_truncated',
        `The model's answer was cut at max_tokens (${request.maxTokens ?? this.options.defaultMaxTokens}) before it ended.`,
        502,
        false,
        undefined,
        { maxTokens: request.maxTokens ?? this.options.defaultMaxTokens },
      );
    }
    const texts = choices.map((c) => c.message?.content ?? '');
    // Some servers omit usage; count it ourselves so the ledger and budgets stay honest.
    const encoding = encodingForModel(model);
    const usage = response.usage
      ? { promptTokens: response.usage.prompt_tokens ?? 0, completionTokens: response.usage.completion_tokens ?? 0 }
      : {
          promptTokens: request.messages.reduce((s, m) => s + countTokens(m.content, encoding) + 4, 3),
          completionTokens: texts.reduce((s, t) => s + countTokens(t, encoding), 0),
        };
    return { texts, usage, model: response.model || model };
  }
}

function retryAfterMs(headers: Headers | undefined): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = headers.get('retry-after');
  if (!value) return undefined;
  if (Number.isFinite(Number(value))) return Math.max(0, Number(value) * 1000);
  const date = Date.parse(value); // the HTTP-date form
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

export function toLlmError(err: unknown, signal?: AbortSignal, limits: { clientMs?: number; transportMs?: number } = {}): LlmError {
  if (err instanceof LlmError) return err;
  if (err instanceof OpenAI.APIUserAbortError || signal?.aborted) return abortedError();
  // The transport names its own timeouts; the client passes them on as a connection error's cause.
  if (err instanceof OpenAI.APIConnectionError && err.cause instanceof SlowEndpointError) return timeoutError(err.cause.limitMs);
  if (limits.transportMs && isTransportTimeout(err)) return timeoutError(limits.transportMs);
  if (err instanceof OpenAI.APIConnectionTimeoutError) return timeoutError(limits.clientMs ?? 0);
  if (err instanceof OpenAI.APIConnectionError) {
    return new LlmError('llm_connection_failed', `Could not reach the model endpoint: ${err.message}`, 502, true);
  }
  if (err instanceof OpenAI.APIError && typeof err.status === 'number') {
    const status = err.status;
    const wait = retryAfterMs(err.headers);
    if (status === 429) {
      return new LlmError('llm_rate_limited', `The model endpoint is rate limiting us: ${err.message}`, 429, true, wait);
    }
    if (status >= 500 || status === 408 || status === 409) {
      return new LlmError('llm_server_error', `The model endpoint failed (${status}): ${err.message}`, 502, true, wait);
    }
    if (status === 401 || status === 403) {
      return new LlmError('llm_auth_failed', `The model endpoint refused our credentials (${status}); check OPENAI_API_KEY.`, 502, false);
    }
    return new LlmError('llm_request_rejected', `The model endpoint rejected the request (${status}): ${err.message}`, 502, false);
  }
  // Typically a body that is not JSON (a flaky proxy, a truncated response): worth another try.
  const message = err instanceof Error ? err.message : String(err);
  return new LlmError('llm_bad_response', `The model endpoint sent a response we could not read: ${message}`, 502, true);
}
