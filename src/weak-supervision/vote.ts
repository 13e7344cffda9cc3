/**
 * The decision step every model shares: per document, each candidate value collects its voters' factors, the
 * highest product wins (ties broken by the rank of the best voter), and the posterior is that product over
 * the sum, plus an optional "none of these values" mass.
 */
import type { EncodedVotes } from './encode.js';
import type { Prediction } from './types.js';

export interface VoteParameters {
  /** factor[f]: multiplicative evidence of one vote by f (e.g. exp of its log-odds weight). */
  factor: Float64Array;
  /** Prior weight of one specific candidate value being the truth (q in the one-coin model; 1 for plain counts). */
  candidatePrior: number;
  /** Mass of "the truth is none of the voted values" for a document with k candidates. */
  otherMass: (k: number) => number;
  /** rank[f]: lower wins ties. */
  rank: Int32Array;
  /** When set, products are replaced by sums of factor (majority vote counts). */
  additive?: boolean;
}

/** Products within this relative distance are a tie; weights fitted from data rarely differ by less. */
const TIE = 1e-9;

/**
 * Fills post[d * F + c] with the posterior of candidate c of document d and returns the predicted values.
 * `post` is reused by EM so a fit allocates it once.
 */
export function decide(enc: EncodedVotes, p: VoteParameters, post: Float64Array, wantValues: boolean): Prediction {
  const { documents: D, functions: F, cand, counts, firstVoter, votes } = enc;
  const values: (string | null)[] = wantValues ? new Array(D) : [];
  const posteriors: number[] = wantValues ? new Array(D) : [];
  const score = new Float64Array(F);
  const best = new Int32Array(F);
  const { factor, candidatePrior, rank, additive } = p;
  for (let d = 0; d < D; d++) {
    const k = counts[d];
    const base = d * F;
    if (k === 0) {
      if (wantValues) {
        values[d] = null;
        posteriors[d] = 0;
      }
      continue;
    }
    for (let c = 0; c < k; c++) {
      score[c] = additive ? 0 : candidatePrior;
      best[c] = F;
    }
    for (let f = 0; f < F; f++) {
      const c = cand[base + f];
      if (c < 0) continue;
      if (additive) score[c] += factor[f];
      else score[c] *= factor[f];
      if (rank[f] < best[c]) best[c] = rank[f];
    }
    let total = additive ? 0 : p.otherMass(k);
    let top = 0;
    for (let c = 0; c < k; c++) {
      const s = score[c];
      total += s;
      if (c === 0) continue;
      const t = score[top];
      const diff = s - t;
      if (diff > TIE * Math.abs(t) || (Math.abs(diff) <= TIE * Math.abs(t) && best[c] < best[top])) top = c;
    }
    for (let c = 0; c < k; c++) post[base + c] = total > 0 ? score[c] / total : 1 / k;
    if (wantValues) {
      values[d] = votes[d][firstVoter[base + top]];
      posteriors[d] = post[base + top];
    }
  }
  return { values, posteriors };
}
