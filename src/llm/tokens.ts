/**
 * Token counting with a real BPE (js-tiktoken), shared by chunking, budgeting and the local model.
 * GPT-2 BPE is the tokenizer of the BASED checkpoints; OpenAI models use their own encodings.
 */
import { getEncoding, type Tiktoken, type TiktokenEncoding } from 'js-tiktoken';

const encoders = new Map<TiktokenEncoding, Tiktoken>();

export function encoderFor(encoding: TiktokenEncoding = 'gpt2'): Tiktoken {
  let enc = encoders.get(encoding);
  if (!enc) {
    enc = getEncoding(encoding);
    encoders.set(encoding, enc);
  }
  return enc;
}

/** Encoding that matches a model name's family; GPT-2 BPE for anything unknown (and for BASED). */
export function encodingForModel(model: string | undefined): TiktokenEncoding {
  const m = (model ?? '').toLowerCase();
  if (/^(gpt-4o|gpt-4\.1|gpt-5|o[134])/.test(m)) return 'o200k_base';
  if (/^(gpt-4|gpt-3\.5|text-embedding-3)/.test(m)) return 'cl100k_base';
  return 'gpt2';
}

export function countTokens(text: string, encoding: TiktokenEncoding = 'gpt2'): number {
  return encoderFor(encoding).encode(text, [], []).length;
}

/**
 * Prompt tokens of a chat request counted here (GPT-2 BPE, 4 per message for the chat framing), whatever the
 * endpoint reports: the one count both sides of "fewer tokens than direct extraction" use, so the ratio compares
 * like with like across endpoints, cache hits and tokenizers.
 */
export function countPromptTokens(messages: readonly { content: string }[]): number {
  return countTokens(messages.map((m) => m.content).join('\n')) + 4 * messages.length;
}
