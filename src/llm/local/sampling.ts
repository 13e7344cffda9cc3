import { seededRandom } from '../../random.js';

export { seededRandom };
/** Next-token choice and stop strings for local generation. */

export interface SamplingOptions {
  /** 0 (or less) means greedy. */
  temperature: number;
  /** Only the k most likely tokens are sampled from (0 = all). */
  topK?: number;
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, random: () => number): number {
  if (!(opts.temperature > 0)) return argmax(logits);
  let ids = Array.from({ length: logits.length }, (_, i) => i);
  if (opts.topK && opts.topK > 0 && opts.topK < ids.length) {
    ids.sort((a, b) => logits[b] - logits[a]);
    ids = ids.slice(0, opts.topK);
  }
  let max = -Infinity;
  for (const i of ids) max = Math.max(max, logits[i]);
  const weights = ids.map((i) => Math.exp((logits[i] - max) / opts.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let r = random() * total;
  for (let j = 0; j < ids.length; j++) {
    r -= weights[j];
    if (r <= 0) return ids[j];
  }
  return ids[ids.length - 1];
}

/**
 * Where generated text must be cut: the earliest occurrence of any stop string, or -1. Only the tail that could
 * contain a new match is searched, so checking after every token stays linear.
 */
export function findStop(text: string, stops: readonly string[], searchFrom = 0): number {
  let cut = -1;
  for (const s of stops) {
    if (!s) continue;
    const i = text.indexOf(s, Math.max(0, searchFrom - s.length + 1));
    if (i >= 0 && (cut < 0 || i < cut)) cut = i;
  }
  return cut;
}
