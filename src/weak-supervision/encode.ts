/**
 * Turns the votes matrix into flat typed arrays of per-document candidate indices, so every model iterates
 * over integers instead of comparing strings again in each pass. Also the one place that validates input.
 */
import { EvaporateError } from '../errors.js';
import type { LabelModelInput, LabelModelWeights, Vote } from './types.js';

export interface EncodedVotes {
  documents: number;
  functions: number;
  /** cand[d * functions + f]: index of f's value among document d's distinct values, or -1 for an abstain. */
  cand: Int32Array;
  /** counts[d]: how many distinct values document d received. */
  counts: Int32Array;
  /** firstVoter[d * functions + c]: a function that voted for candidate c (to read its string back). */
  firstVoter: Int32Array;
  votes: Vote[][];
}

function invalid(message: string): never {
  throw new EvaporateError('invalid_label_input', message, 400);
}

/** Checks the shape of a votes matrix and returns its number of functions. */
export function checkVotes(votes: unknown, functions?: number): number {
  if (!Array.isArray(votes)) invalid('Votes must be a list of documents, each a list of function outputs.');
  const width = functions ?? (votes.length > 0 && Array.isArray(votes[0]) ? (votes[0] as unknown[]).length : 0);
  for (let d = 0; d < votes.length; d++) {
    const row = votes[d] as unknown;
    if (!Array.isArray(row)) invalid(`Document ${d} has no list of function outputs.`);
    if (row.length !== width) invalid(`Document ${d} has ${row.length} function outputs; expected ${width}, one per function.`);
    for (let f = 0; f < width; f++) {
      const v = row[f] as unknown;
      if (v !== null && typeof v !== 'string') invalid(`Document ${d}, function ${f}: a vote must be a normalized string or null.`);
    }
  }
  return width;
}

export function checkInput(input: LabelModelInput): number {
  if (input === null || typeof input !== 'object') invalid('Label model input must be an object with votes.');
  const functions = checkVotes(input.votes);
  if (input.priors !== undefined) {
    if (!Array.isArray(input.priors) || input.priors.length !== functions) {
      invalid(`Priors must hold one number per function (${functions}).`);
    }
    input.priors.forEach((p, f) => {
      if (typeof p !== 'number' || !(p >= 0 && p <= 1)) invalid(`Prior of function ${f} must be a number from 0 to 1.`);
    });
  }
  return functions;
}

export function checkWeights(weights: LabelModelWeights, model: string): void {
  if (weights === null || typeof weights !== 'object' || weights.model !== model) {
    invalid(`These weights were fitted by "${String(weights?.model)}", not by the "${model}" label model.`);
  }
  if (!Array.isArray(weights.accuracies) || weights.accuracies.some((a) => typeof a !== 'number' || !(a >= 0 && a <= 1))) {
    invalid('Label model weights must hold one accuracy from 0 to 1 per function.');
  }
}

export function encodeVotes(votes: Vote[][], functions: number): EncodedVotes {
  const documents = votes.length;
  const cand = new Int32Array(documents * functions);
  const counts = new Int32Array(documents);
  const firstVoter = new Int32Array(documents * functions);
  for (let d = 0; d < documents; d++) {
    const row = votes[d];
    const base = d * functions;
    let k = 0;
    for (let f = 0; f < functions; f++) {
      const v = row[f];
      if (v === null) {
        cand[base + f] = -1;
        continue;
      }
      // At most a handful of distinct values per document: a linear scan beats a Map here.
      let c = 0;
      while (c < k && row[firstVoter[base + c]] !== v) c++;
      if (c === k) firstVoter[base + k++] = f;
      cand[base + f] = c;
    }
    counts[d] = k;
  }
  return { documents, functions, cand, counts, firstVoter, votes };
}

/**
 * Order in which functions break ties: higher key first, then lower index. Deterministic for any input, so
 * the same votes always give the same table.
 */
export function rankFunctions(keys: readonly number[] | undefined, functions: number): Int32Array {
  const order = Array.from({ length: functions }, (_, f) => f);
  if (keys) order.sort((a, b) => keys[b] - keys[a] || a - b);
  const rank = new Int32Array(functions);
  order.forEach((f, r) => (rank[f] = r));
  return rank;
}
