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
