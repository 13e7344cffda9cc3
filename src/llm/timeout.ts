/**
 * Per-call timeout: aborts the inner call's signal and, for providers that ignore signals, stops
 * waiting for them too. Only the time spent in the call counts, not time queued for a slot.
 */
import { abortedError, timeoutError } from './errors.js';
import type { CallContext, CompletionRequest, CompletionResult, LlmProvider } from './types.js';

export function withTimeout(inner: LlmProvider, timeoutMs: number): LlmProvider {
  if (!(timeoutMs > 0)) return inner;
  return {
    name: inner.name,
    async complete(request: CompletionRequest, context: CallContext = {}): Promise<CompletionResult> {
      if (context.signal?.aborted) throw abortedError();
      const controller = new AbortController();
      const onOuterAbort = () => controller.abort();
      context.signal?.addEventListener('abort', onOuterAbort, { once: true });
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          controller.abort();
          reject(timeoutError(timeoutMs));
        }, timeoutMs);
      });
      try {
        return await Promise.race([inner.complete(request, { ...context, signal: controller.signal }), timedOut]);
      } catch (err) {
        // The inner call sees our abort as a user abort; report it as what it was.
        if (controller.signal.aborted && !context.signal?.aborted) {
          throw timeoutError(timeoutMs);
        }
        throw err;
      } finally {
        clearTimeout(timer);
        context.signal?.removeEventListener('abort', onOuterAbort);
      }
    },
  };
}
