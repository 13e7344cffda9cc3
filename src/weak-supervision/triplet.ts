/**
 * Closed-form accuracies from pairwise agreement (the triplet method of FlyingSquid, Fu et al. 2020, adapted
 * to a one-coin model over open string values). If f and g vote independently given the truth, they agree
 * when both are right or both are wrong the same way:
 *     A_fg = a_f a_g + (1 - a_f)(1 - a_g) q
 * where q is the chance that two wrong votes coincide. Ignoring the second term, a_f^2 = A_fg A_fh / A_gh for
 * any two others g, h; we take the median over all such triplets (robust to one correlated partner), then
 * estimate q and subtract its term, a few times. No iteration over documents after the one pass that counts
 * agreements, so it costs O(D F^2 + F^3).
 */
import { checkInput, checkVotes, checkWeights, encodeVotes, rankFunctions, type EncodedVotes } from './encode.js';
import type { LabelModel, LabelModelInput, LabelModelWeights, Prediction, Vote } from './types.js';
import { decide } from './vote.js';

export interface PairStats {
  functions: number;
  /** both[f * F + g]: documents where both voted. */
  both: Float64Array;
  /** agree[f * F + g]: documents where both voted the same value. */
  agree: Float64Array;
  /** voted[f]: documents where f voted. */
  voted: Float64Array;
}

export function pairStats(enc: EncodedVotes): PairStats {
  const { documents: D, functions: F, cand } = enc;
  const both = new Float64Array(F * F);
  const agree = new Float64Array(F * F);
  const voted = new Float64Array(F);
  for (let d = 0; d < D; d++) {
    const base = d * F;
    for (let f = 0; f < F; f++) {
      const cf = cand[base + f];
      if (cf < 0) continue;
      voted[f]++;
      for (let g = f + 1; g < F; g++) {
        const cg = cand[base + g];
        if (cg < 0) continue;
        both[f * F + g]++;
        if (cf === cg) agree[f * F + g]++;
      }
    }
  }
  for (let f = 0; f < F; f++) {
    for (let g = f + 1; g < F; g++) {
      both[g * F + f] = both[f * F + g];
      agree[g * F + f] = agree[f * F + g];
    }
  }
  return { functions: F, both, agree, voted };
}

export const clampAccuracy = (a: number) => Math.min(0.999, Math.max(0.001, a));
export const clampCollision = (q: number) => Math.min(0.95, Math.max(0.001, q));

function median(xs: number[]): number {
  xs.sort((a, b) => a - b);
  const m = xs.length >> 1;
  return xs.length % 2 ? xs[m] : (xs[m - 1] + xs[m]) / 2;
}

export interface TripletEstimate {
  accuracies: number[];
  q: number;
}

/**
 * Accuracies from agreement rates. Pairs with fewer than minOverlap shared votes are ignored; a function with
 * no usable triplet keeps its fallback (its prior, else 0.7).
 */
export function tripletAccuracies(stats: PairStats, minOverlap: number, fallback: readonly number[]): TripletEstimate {
  const F = stats.functions;
  let acc = Array.from({ length: F }, (_, f) => fallback[f]);
  let q = 0;
  for (let round = 0; round < 4; round++) {
    const next = acc.slice();
    for (let f = 0; f < F; f++) {
      const a = tripletAccuracy(stats, f, -1, acc, q, minOverlap);
      if (!Number.isNaN(a)) next[f] = a;
    }
    acc = next;
    const qs: number[] = [];
    for (let f = 0; f < F; f++) {
      for (let g = f + 1; g < F; g++) {
        const a = agreementRate(stats, f, g, minOverlap);
        const wrong = (1 - acc[f]) * (1 - acc[g]);
        // Pairs that are rarely both wrong say nothing about q.
        if (!Number.isNaN(a) && wrong > 0.01) qs.push((a - acc[f] * acc[g]) / wrong);
      }
    }
    q = qs.length > 0 ? clampCollision(median(qs)) : 0.1;
  }
  return { accuracies: acc, q };
}

export function agreementRate(stats: PairStats, f: number, g: number, minOverlap: number): number {
  const n = stats.both[f * stats.functions + g];
  return n >= minOverlap ? stats.agree[f * stats.functions + g] / n : NaN;
}

/**
 * Median triplet estimate of f's accuracy using only partners other than `exclude` (-1 for none), with the
 * agreement that coinciding wrong votes explain removed first. NaN when no triplet has enough overlap.
 */
export function tripletAccuracy(stats: PairStats, f: number, exclude: number, acc: readonly number[], q: number, minOverlap: number): number {
  const F = stats.functions;
  const corrected = (x: number, y: number) => {
    const a = agreementRate(stats, x, y, minOverlap);
    return Number.isNaN(a) ? NaN : Math.max(1e-6, a - (1 - acc[x]) * (1 - acc[y]) * q);
  };
  const estimates: number[] = [];
  for (let g = 0; g < F; g++) {
    if (g === f || g === exclude) continue;
    const afg = corrected(f, g);
    if (Number.isNaN(afg)) continue;
    for (let h = g + 1; h < F; h++) {
      if (h === f || h === exclude) continue;
      const afh = corrected(f, h);
      const agh = corrected(g, h);
      if (Number.isNaN(afh) || Number.isNaN(agh)) continue;
      estimates.push(Math.sqrt((afg * afh) / agh));
    }
  }
  return estimates.length > 0 ? clampAccuracy(median(estimates)) : NaN;
}

/** Per-function evidence of one vote: the odds that a vote is right over the chance it is a coinciding wrong one. */
export function voteFactors(accuracies: readonly number[], q: number, weights?: readonly number[]): Float64Array {
  return Float64Array.from(accuracies, (a0, f) => {
    const a = clampAccuracy(a0);
    return Math.exp((weights?.[f] ?? 1) * Math.log(a / ((1 - a) * q)));
  });
}

/**
 * One-coin decision rule shared with the EM model: a specific value has prior weight q of being the truth
 * (as likely as a given wrong value), and "none of the k voted values" keeps the rest, 1 - k q.
 */
export function oneCoinDecide(enc: EncodedVotes, accuracies: readonly number[], q: number, weights: readonly number[] | undefined, post: Float64Array, wantValues: boolean): Prediction {
  return decide(
    enc,
    {
      factor: voteFactors(accuracies, q, weights),
      candidatePrior: q,
      otherMass: (k) => Math.max(0, 1 - k * q),
      rank: rankFunctions(accuracies, enc.functions),
    },
    post,
    wantValues,
  );
}

export const tripletModel: LabelModel = {
  name: 'triplet',
  fit(input: LabelModelInput): LabelModelWeights {
    const F = checkInput(input);
    const enc = encodeVotes(input.votes, F);
    const { accuracies, q } = tripletAccuracies(pairStats(enc), 20, input.priors ?? new Array(F).fill(0.7));
    return { model: 'triplet', accuracies, extra: { q } };
  },
  predict(weights: LabelModelWeights, votes: Vote[][]): Prediction {
    checkWeights(weights, 'triplet');
    const F = weights.accuracies.length;
    checkVotes(votes, F);
    const enc = encodeVotes(votes, F);
    const q = clampCollision(Number(weights.extra?.q ?? 0.1));
    return oneCoinDecide(enc, weights.accuracies, q, undefined, new Float64Array(enc.documents * F), true);
  },
};
