/**
 * Worst-case size of a request before it is sent: what budgets and the tokens-per-minute limiter
 * reserve. Prompt tokens are counted with the model family's tokenizer plus the chat framing overhead;
 * completion tokens are max_tokens for each of the n candidates.
 */
import { countTokens, encodingForModel } from './tokens.js';
import type { CompletionRequest, TokenUsage } from './types.js';

// Chat formats wrap each message in a few special tokens, and the reply is primed with a few more.
const PER_MESSAGE_OVERHEAD = 4;
const REPLY_PRIMING = 3;

// BPE in JS costs milliseconds on long prompts; the budget and the limiter see the same request object.
const memo = new WeakMap<CompletionRequest, number>();

export function estimatePromptTokens(request: CompletionRequest): number {
  const known = memo.get(request);
  if (known !== undefined) return known;
  const encoding = encodingForModel(request.model);
  let total = REPLY_PRIMING;
  for (const m of request.messages) total += PER_MESSAGE_OVERHEAD + countTokens(m.content, encoding);
  memo.set(request, total);
  return total;
}

export function worstCaseUsage(request: CompletionRequest, defaultMaxTokens: number): TokenUsage {
  const n = Math.max(1, request.n ?? 1);
  return {
    // x n: a server that ignores n is asked again per missing candidate, paying for the prompt each time.
    promptTokens: estimatePromptTokens(request) * n,
    completionTokens: (request.maxTokens ?? defaultMaxTokens) * n,
  };
}
