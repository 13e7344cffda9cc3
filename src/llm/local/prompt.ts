/**
 * Chat messages to a plain-text prompt for a base (not instruction-tuned) recurrent model, with the JRT-Prompt
 * option: the context is written twice, so a fixed-size state has seen all of it before the question arrives.
 */
import type { ChatMessage } from '../types.js';

export interface PromptParts {
  /** Everything but the final question: instructions and documents, shareable across questions. */
  context: string;
  /** The final user turn plus the cue for the answer. */
  question: string;
  /** The final turn alone, for JRT when there is no separate context. */
  finalTurn: string;
}

export function splitPrompt(messages: ChatMessage[]): PromptParts {
  const render = (m: ChatMessage) => (m.role === 'assistant' ? `Answer: ${m.content}\n\n` : `${m.content}\n\n`);
  let last = messages.length - 1;
  while (last >= 0 && messages[last].role !== 'user') last--;
  const context = messages.slice(0, Math.max(0, last)).map(render).join('');
  const tail = last >= 0 ? messages.slice(last).map(render).join('') : '';
  return { context, question: `${tail}Answer:`, finalTurn: tail };
}

/** JRT-Prompt (Arora et al. 2024): repeat the context before the question. */
export function jrtPrompt(parts: PromptParts): PromptParts {
  // document and question in one turn: read that turn twice
  if (!parts.context) return { ...parts, question: `${parts.finalTurn}${parts.finalTurn}Answer:` };
  return { ...parts, context: parts.context + parts.context };
}
