/** Decoding loop: prompt state in, n candidate texts out; candidates decode together as one batch. */
import type { Tiktoken } from 'js-tiktoken';
import { EvaporateError } from '../../errors.js';
import type { LocalEngine, NativeState } from './engine.js';
import { findStop, sampleToken, seededRandom, type SamplingOptions } from './sampling.js';

export const GPT2_EOS = 50256;

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  stop?: string[];
  n?: number;
  seed?: number;
  signal?: AbortSignal;
}

export interface Generation {
  texts: string[];
  completionTokens: number;
}

/**
 * `state` has consumed the prompt and `lastLogits` are the logits after its final token. The state is
 * advanced in place (it becomes candidate 0); further candidates start from clones.
 */
export async function generate(
  engine: LocalEngine,
  encoder: Tiktoken,
  state: NativeState,
  lastLogits: Float32Array,
  opts: GenerateOptions,
): Promise<Generation> {
  const n = Math.max(1, opts.n ?? 1);
  const random = seededRandom(opts.seed ?? 0);
  const stops = opts.stop ?? [];
  const cands = Array.from({ length: n }, (_, i) => ({
    state: i === 0 ? state : engine.cloneState(state),
    tokens: [] as number[],
    text: '',
    done: false,
  }));
  const firstRow = engine.row(lastLogits, 0);
  for (const c of cands) c.tokens.push(sampleToken(firstRow, opts, random));
  let total = 0;
  const settle = (c: (typeof cands)[number]) => {
    const last = c.tokens[c.tokens.length - 1];
    if (last === GPT2_EOS) {
      c.tokens.pop();
      c.done = true;
    }
    const prevLen = c.text.length;
    c.text = encoder.decode(c.tokens);
    const cut = findStop(c.text, stops, prevLen);
    if (cut >= 0) {
      c.text = c.text.slice(0, cut);
      c.done = true;
    }
    if (c.tokens.length >= opts.maxTokens) c.done = true;
  };
  for (const c of cands) settle(c);
  while (cands.some((c) => !c.done)) {
    if (opts.signal?.aborted) throw new EvaporateError('aborted', 'The local generation was cancelled.', 499);
    const active = cands.filter((c) => !c.done);
    const logits = await engine.forward(active.map((c) => ({ state: c.state, tokens: Int32Array.of(c.tokens[c.tokens.length - 1]) })));
    active.forEach((c, i) => {
      c.tokens.push(sampleToken(engine.row(logits, i), opts, random));
      settle(c);
    });
  }
  for (const c of cands) total += c.tokens.length;
  return { texts: cands.map((c) => c.text), completionTokens: total };
}
