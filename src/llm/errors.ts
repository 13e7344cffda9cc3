/**
 * Errors of the LLM layer: EvaporateErrors that also say whether trying again can help, and how long
 * the endpoint asked us to wait. The retry wrapper reads only these two fields.
 */
import { EvaporateError } from '../errors.js';

export class LlmError extends EvaporateError {
  constructor(
    code: string,
    message: string,
    status: number,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
    details?: Record<string, unknown>,
  ) {
    super(code, message, status, details);
    this.name = 'LlmError';
  }
}

export function isRetryable(err: unknown): err is LlmError {
  return err instanceof LlmError && err.retryable;
}

export function abortedError(): LlmError {
  return new LlmError('llm_aborted', 'The language-model call was cancelled.', 499, false);
}

/**
 * A call that ran out of time. The message names the limit and the setting that raises it, since the
 * usual cause is a slow self-hosted endpoint, not a broken one.
 */
export function timeoutError(limitMs: number, what = 'The model endpoint did not answer'): LlmError {
  return new LlmError(
    'llm_timeout',
    `${what} within ${limitMs} ms (${(limitMs / 1000).toFixed(limitMs % 1000 === 0 ? 0 : 1)} s), the limit set by ` +
      'EVAPORATE_LLM_TIMEOUT_MS. Raise it for a slow endpoint (0 = no limit).',
    504,
    true,
    undefined,
    { timeoutMs: limitMs, setting: 'EVAPORATE_LLM_TIMEOUT_MS' },
  );
}
