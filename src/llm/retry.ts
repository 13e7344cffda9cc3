/**
 * Retries on what a retry can fix (429, 5xx, timeouts, dropped connections, unreadable bodies) with
 * exponential backoff and full jitter, so parallel callers that failed together do not retry together.
 * A Retry-After from the server is honoured as the minimum wait; one longer than maxDelayMs fails the
 * call at once rather than stalling a job for an unbounded time.
 */
import { abortedError, isRetryable, LlmError } from './errors.js';
import { attemptTallyOf } from './attempts.js';
import type { CallContext, CompletionRequest, CompletionResult, LlmProvider } from './types.js';

export interface RetryOptions {
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Observes each scheduled retry (for logs and tests). */
  onRetry?: (info: { attempt: number; delayMs: number; error: LlmError }) => void;
  random?: () => number;
}

export function backoffDelay(attempt: number, error: LlmError, options: RetryOptions): number | undefined {
  const random = options.random ?? Math.random;
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** attempt);
  const jittered = random() * ceiling;
  if (error.retryAfterMs === undefined) return jittered;
  if (error.retryAfterMs > options.maxDelayMs) return undefined;
  // Never earlier than asked; a little spread so a burst of 429s does not come back as one burst.
  return error.retryAfterMs + random() * Math.min(options.baseDelayMs, ceiling) * 0.1;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function withRetry(inner: LlmProvider, options: RetryOptions): LlmProvider {
  return {
    name: inner.name,
    async complete(request: CompletionRequest, context: CallContext = {}): Promise<CompletionResult> {
      const tally = attemptTallyOf(context);
      for (let attempt = 0; ; attempt++) {
        try {
          if (tally) tally.sent += 1;
          return await inner.complete(request, context);
        } catch (err) {
          if (tally) tally.failed += 1;
          if (!isRetryable(err) || attempt >= options.maxRetries || context.signal?.aborted) throw err;
          const delayMs = backoffDelay(attempt, err, options);
          if (delayMs === undefined) throw err;
          options.onRetry?.({ attempt: attempt + 1, delayMs, error: err });
          await sleep(delayMs, context.signal);
        }
      }
    },
  };
}
