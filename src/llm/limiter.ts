/**
 * Keeps us inside an endpoint's limits: at most `concurrency` calls in flight, and requests and tokens
 * per minute as token buckets that refill continuously. Waiters are served in arrival order, so a
 * large request is not starved by a stream of small ones. One limiter is shared by every job that
 * talks to the same endpoint, because the endpoint's limits are per account, not per job.
 */
import { abortedError } from './errors.js';
import { worstCaseUsage } from './estimate.js';
import type { CallContext, CompletionRequest, CompletionResult, LlmProvider } from './types.js';

export interface RateLimitOptions {
  concurrency: number;
  /** 0 = unlimited. */
  requestsPerMinute: number;
  /** 0 = unlimited. */
  tokensPerMinute: number;
  /** Completion tokens assumed for requests that set no max_tokens. */
  defaultMaxTokens: number;
}

class Bucket {
  private level: number;
  private last = Date.now();
  constructor(readonly perMinute: number) {
    this.level = perMinute;
  }
  private refill(): void {
    const now = Date.now();
    this.level = Math.min(this.perMinute, this.level + ((now - this.last) * this.perMinute) / 60_000);
    this.last = now;
  }
  /** ms until `amount` is available (0 = now); a request larger than the whole bucket waits for a full one. */
  waitFor(amount: number): number {
    if (this.perMinute <= 0) return 0;
    this.refill();
    const need = Math.min(amount, this.perMinute);
    return this.level >= need ? 0 : Math.ceil(((need - this.level) * 60_000) / this.perMinute);
  }
  take(amount: number): void {
    if (this.perMinute <= 0) return;
    this.refill();
    this.level -= Math.min(amount, this.perMinute);
  }
}

interface Waiter {
  tokens: number;
  resolve: () => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

export class RateLimiter {
  private active = 0;
  private readonly queue: Waiter[] = [];
  private readonly requests: Bucket;
  private readonly tokens: Bucket;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly options: RateLimitOptions) {
    this.requests = new Bucket(options.requestsPerMinute);
    this.tokens = new Bucket(options.tokensPerMinute);
  }

  get inFlight(): number {
    return this.active;
  }
  get waiting(): number {
    return this.queue.length;
  }

  /** Resolves with a release function once a slot and the rate budget are available. */
  acquire(tokens: number, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(abortedError());
    return new Promise<() => void>((resolve, reject) => {
      const waiter: Waiter = {
        tokens,
        signal,
        resolve: () => resolve(this.releaser()),
        reject,
        onAbort: () => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
          reject(abortedError());
          this.pump();
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.queue.push(waiter);
      this.pump();
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active -= 1;
      this.pump();
    };
  }

  private pump(): void {
    while (this.queue.length > 0 && this.active < Math.max(1, this.options.concurrency)) {
      const head = this.queue[0]!;
      const wait = Math.max(this.requests.waitFor(1), this.tokens.waitFor(head.tokens));
      if (wait > 0) {
        if (!this.timer) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.pump();
          }, wait);
        }
        return;
      }
      this.queue.shift();
      head.signal?.removeEventListener('abort', head.onAbort);
      this.requests.take(1);
      this.tokens.take(head.tokens);
      this.active += 1;
      head.resolve();
    }
  }
}

export function withRateLimit(inner: LlmProvider, limiter: RateLimiter): LlmProvider {
  return {
    name: inner.name,
    async complete(request: CompletionRequest, context: CallContext = {}): Promise<CompletionResult> {
      let tokens = 0;
      if (limiter.options.tokensPerMinute > 0) {
        const usage = worstCaseUsage(request, limiter.options.defaultMaxTokens);
        tokens = usage.promptTokens + usage.completionTokens;
      }
      const release = await limiter.acquire(tokens, context.signal);
      try {
        return await inner.complete(request, context);
      } finally {
        release();
      }
    },
  };
}
