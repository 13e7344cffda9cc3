/**
 * The main label model: Dawid-Skene EM with one accuracy per function (a one-coin model), over per-document
 * candidate sets, with
 *   - a learned collision rate q (how often two wrong votes name the same wrong value), so agreement on a value
 *     counts for as much as it should when wrong values are shared;
 *   - a "none of the voted values" outcome, so a document whose voters are all wrong does not inflate them;
 *   - Beta priors from the sample scores, so small corpora lean on the sample;
 *   - correlated-function detection: pairs whose wrong votes coincide far more often than q explains (copies,
 *     or functions wrong in the same way) have their votes down-weighted, so a cluster of copies counts about as
 *     one function.
 * Fitted weights (accuracies, q, per-function vote weights) are enough to predict on new documents.
 */
import { checkInput, checkVotes, checkWeights, encodeVotes, type EncodedVotes } from './encode.js';
import { agreementRate, clampAccuracy, clampCollision, oneCoinDecide, pairStats, tripletAccuracies, tripletAccuracy, voteFactors, type PairStats } from './triplet.js';
import type { LabelModel, LabelModelInput, LabelModelWeights, Prediction, Vote } from './types.js';

export interface OneCoinOptions {
  /** EM iterations per round at most. */
  maxIterations: number;
  /** EM stops when no accuracy (nor q) moves by more than this. */
  tolerance: number;
  /** Weight of a prior, in documents: a prior of 0.8 with strength 20 acts as 16 right and 4 wrong votes. */
  priorStrength: number;
  /** Error correlation (0 = independent, 1 = always wrong the same way) below which a pair counts as independent. */
  correlationFloor: number;
  /** Error correlation from raw agreement (before EM) above which a pair is treated as copies. */
  copyCorrelation: number;
  /** Expected documents where both of a pair are wrong needed before judging its correlation. */
  minCorrelationEvidence: number;
  /** Rounds of fit, detect correlated pairs, refit. */
  maxRounds: number;
}

export const DEFAULT_ONE_COIN_OPTIONS: OneCoinOptions = {
  maxIterations: 50,
  tolerance: 1e-4,
  priorStrength: 20,
  correlationFloor: 0.25,
  copyCorrelation: 0.6,
  minCorrelationEvidence: 10,
  maxRounds: 3,
};

interface EmState {
  accuracies: number[];
  q: number;
  iterations: number;
}

/** EM from the given start; post is scratch space for candidate posteriors. */
function em(
  enc: EncodedVotes,
  start: EmState,
  weights: readonly number[],
  correlatedPairs: readonly (readonly [number, number])[],
  priors: readonly number[] | undefined,
  opts: OneCoinOptions,
  post: Float64Array,
): EmState {
  const { documents: D, functions: F, cand, counts } = enc;
  let acc = start.accuracies.slice();
  let q = start.q;
  const right = new Float64Array(F);
  const voted = new Float64Array(F);
  const mass = new Float64Array(F);
  let iterations = 0;
  const score = new Float64Array(F);
  // q is measured on functions outside every correlated pair when enough remain: a function that keeps making
  // one particular mistake also coincides with independent functions more often than they do with each other.
  const flagged = new Set(correlatedPairs.flat());
  const qFromIndependent = F - flagged.size >= 3;
  const inQ = Uint8Array.from({ length: F }, (_, f) => (qFromIndependent && flagged.has(f) ? 0 : 1));
  const subtractPairs = qFromIndependent ? [] : correlatedPairs;
  for (let it = 0; it < opts.maxIterations; it++) {
    iterations++;
    // E-step and M-step sums in one pass over the documents (the same rule as oneCoinDecide, inlined: this
    // loop is most of the fitting time).
    const factor = voteFactors(acc, q, weights);
    right.fill(0);
    voted.fill(0);
    let agreeWrong = 0;
    let splitWrong = 0;
    for (let d = 0; d < D; d++) {
      const k = counts[d];
      if (k === 0) continue;
      const base = d * F;
      let total = 0;
      for (let c = 0; c < k; c++) {
        score[c] = q;
        mass[c] = 0;
      }
      for (let f = 0; f < F; f++) {
        const c = cand[base + f];
        if (c < 0) continue;
        score[c] *= factor[f];
        voted[f]++;
        if (inQ[f]) {
          mass[c]++;
          total++;
        }
      }
      let z = Math.max(0, 1 - k * q);
      for (let c = 0; c < k; c++) z += score[c];
      for (let c = 0; c < k; c++) post[base + c] = score[c] / z;
      for (let f = 0; f < F; f++) {
        const c = cand[base + f];
        if (c >= 0) right[f] += post[base + c];
      }
      // Pairs of voters that are both wrong, and those among them that agree, counted per candidate in O(k):
      // a pair agreeing on c is both wrong unless c is true; a pair split over c, c' unless either is true.
      let sumMassSq = 0;
      let splitRight = 0;
      for (let c = 0; c < k; c++) {
        const m = mass[c];
        const p = post[base + c];
        sumMassSq += m * m;
        agreeWrong += ((m * (m - 1)) / 2) * (1 - p);
        splitRight += p * m * (total - m);
      }
      splitWrong += (total * total - sumMassSq) / 2 - splitRight;
      // Otherwise correlated pairs, which agree when wrong by construction rather than by chance, are taken out.
      for (const [f, g] of subtractPairs) {
        const cf = cand[base + f];
        const cg = cand[base + g];
        if (cf < 0 || cg < 0) continue;
        if (cf === cg) agreeWrong -= 1 - post[base + cf];
        else splitWrong -= Math.max(0, 1 - post[base + cf] - post[base + cg]);
      }
    }
    let moved = 0;
    const next = new Array<number>(F);
    for (let f = 0; f < F; f++) {
      const alpha = priors ? opts.priorStrength : 0;
      const prior = priors ? priors[f] : 0;
      next[f] = voted[f] + alpha > 0 ? clampAccuracy((right[f] + alpha * prior) / (voted[f] + alpha)) : acc[f];
      moved = Math.max(moved, Math.abs(next[f] - acc[f]));
    }
    let nextQ = q;
    if (agreeWrong + splitWrong > 1e-9) {
      nextQ = clampCollision(agreeWrong / (agreeWrong + splitWrong));
    }
    moved = Math.max(moved, Math.abs(nextQ - q));
    acc = next;
    q = nextQ;
    if (moved < opts.tolerance) break;
  }
  oneCoinDecide(enc, acc, q, weights, post, false);
  return { accuracies: acc, q, iterations };
}

export interface Correlation {
  f: number;
  g: number;
  /** 0 = wrong votes coincide only as often as chance (q), 1 = whenever both are wrong they say the same thing. */
  errorCorrelation: number;
  /** Expected number of documents where both were wrong (the evidence behind the figure). */
  evidence: number;
}

/**
 * For each pair, how often the two agree on documents where both are wrong, weighted by the posterior that
 * both are wrong. Copies and same-mistake functions sit near 1; independent functions near q. Robust to the
 * copies having swayed the posteriors: documents the pair wins drop out of both numerator and denominator.
 */
export function errorCorrelations(enc: EncodedVotes, post: Float64Array, q: number): Correlation[] {
  const { documents: D, functions: F, cand } = enc;
  const agreeWrong = new Float64Array(F * F);
  const bothWrong = new Float64Array(F * F);
  for (let d = 0; d < D; d++) {
    const base = d * F;
    for (let f = 0; f < F; f++) {
      const cf = cand[base + f];
      if (cf < 0) continue;
      const pf = post[base + cf];
      for (let g = f + 1; g < F; g++) {
        const cg = cand[base + g];
        if (cg < 0) continue;
        if (cf === cg) {
          agreeWrong[f * F + g] += 1 - pf;
          bothWrong[f * F + g] += 1 - pf;
        } else {
          bothWrong[f * F + g] += Math.max(0, 1 - pf - post[base + cg]);
        }
      }
    }
  }
  const out: Correlation[] = [];
  for (let f = 0; f < F; f++) {
    for (let g = f + 1; g < F; g++) {
      const evidence = bothWrong[f * F + g];
      if (evidence <= 0) continue;
      const rate = agreeWrong[f * F + g] / evidence;
      out.push({ f, g, errorCorrelation: Math.max(0, (rate - q) / (1 - q)), evidence });
    }
  }
  return out;
}

/**
 * Vote weights from correlations: each function's weight is 1 / (1 + the summed excess correlation with the
 * others), so k exact copies weigh 1/k each and together count as one function, while a pair that shares only
 * some mistakes is down-weighted less.
 */
/**
 * The same question before any EM, from raw agreement: do f and g disagree much less often than their
 * accuracies predict? Each accuracy is a triplet estimate that leaves the other one out, so a pair of copies
 * cannot vouch for each other. Needed because when copies outnumber everyone else, EM can settle on
 * believing them, and then the posteriors no longer show them being wrong together. The figure is
 * 1 - observed / expected disagreement; its evidence, the expected number of disagreements.
 */
export function agreementCorrelations(stats: PairStats, accuracies: readonly number[], q: number, minOverlap: number, sampleScores?: readonly number[]): Correlation[] {
  const F = stats.functions;
  const out: Correlation[] = [];
  for (let f = 0; f < F; f++) {
    for (let g = f + 1; g < F; g++) {
      const observed = agreementRate(stats, f, g, minOverlap);
      if (Number.isNaN(observed)) continue;
      // Sample scores are measured apart from these votes, so they cannot be swayed by the pair itself.
      // A sample score is measured apart from these votes, so it cannot be inflated by the pair itself; the
      // higher of the two estimates is used, so that a low or noisy sample score alone never makes a pair of
      // good functions look like copies.
      const af = Math.max(tripletAccuracy(stats, f, g, accuracies, q, minOverlap), sampleScores ? clampAccuracy(sampleScores[f]) : 0);
      const ag = Math.max(tripletAccuracy(stats, g, f, accuracies, q, minOverlap), sampleScores ? clampAccuracy(sampleScores[g]) : 0);
      if (Number.isNaN(af) || Number.isNaN(ag)) continue;
      const expected = 1 - (af * ag + (1 - af) * (1 - ag) * q);
      if (expected <= 0) continue;
      const ratio = (1 - observed) / expected;
      out.push({ f, g, errorCorrelation: Math.min(1, Math.max(0, 1 - ratio)), evidence: stats.both[f * F + g] * expected });
    }
  }
  return out;
}

/**
 * Three or more functions that all agree with one another can look like copies to the agreement figure, yet
 * are far more often simply all right: there is one true value to agree on. Pairs inside such a bloc are not
 * treated as copies before EM (the posterior-based figure still catches a bloc that is wrong together).
 */
function withoutBlocs(pairs: Correlation[]): Correlation[] {
  const linked = new Set(pairs.map((c) => `${c.f},${c.g}`));
  const has = (a: number, b: number) => linked.has(a < b ? `${a},${b}` : `${b},${a}`);
  const members = [...new Set(pairs.flatMap((c) => [c.f, c.g]))];
  return pairs.filter((c) => !members.some((h) => h !== c.f && h !== c.g && has(c.f, h) && has(c.g, h)));
}

/** Keeps, per pair, the stronger of two correlation estimates that have enough evidence. */
function strongest(a: readonly Correlation[], b: readonly Correlation[], minEvidence: number): Correlation[] {
  const byPair = new Map<string, Correlation>();
  for (const c of [...a, ...b]) {
    if (c.evidence < minEvidence) continue;
    const key = `${c.f},${c.g}`;
    const seen = byPair.get(key);
    if (!seen || c.errorCorrelation > seen.errorCorrelation) byPair.set(key, c);
  }
  return [...byPair.values()];
}

export function correlationWeights(F: number, correlations: readonly Correlation[], opts: OneCoinOptions): { weights: number[]; pairs: [number, number][] } {
  const load = new Float64Array(F);
  const pairs: [number, number][] = [];
  for (const c of correlations) {
    if (c.evidence < opts.minCorrelationEvidence) continue;
    const excess = (c.errorCorrelation - opts.correlationFloor) / (1 - opts.correlationFloor);
    if (excess <= 0) continue;
    load[c.f] += excess;
    load[c.g] += excess;
    pairs.push([c.f, c.g]);
  }
  return { weights: Array.from(load, (l) => 1 / (1 + l)), pairs };
}

export function createOneCoinModel(options: Partial<OneCoinOptions> = {}): LabelModel {
  const opts = { ...DEFAULT_ONE_COIN_OPTIONS, ...options };
  return {
    name: 'one-coin',
    fit(input: LabelModelInput): LabelModelWeights {
      const F = checkInput(input);
      const enc = encodeVotes(input.votes, F);
      const fallback = input.priors ?? new Array<number>(F).fill(0.7);
      // Triplet estimates start EM near the answer, which both saves iterations and steers clear of the
      // degenerate fixed point where every function is called wrong.
      const stats = pairStats(enc);
      const triplets = tripletAccuracies(stats, 20, fallback);
      const start = triplets;
      const post = new Float64Array(enc.documents * F);
      // The figure from raw agreement is noisier (triplets through weak partners), so only near-copies are
      // taken from it; milder shared mistakes are left for the posterior-based figure after EM.
      const before = withoutBlocs(
        agreementCorrelations(stats, triplets.accuracies, triplets.q, 20, input.priors).filter(
          (c) => c.errorCorrelation >= opts.copyCorrelation && c.evidence >= opts.minCorrelationEvidence,
        ),
      );
      let correlations = strongest(before, [], opts.minCorrelationEvidence);
      let { weights, pairs } = correlationWeights(F, correlations, opts);
      let state: EmState = { accuracies: start.accuracies, q: start.q, iterations: 0 };
      let iterations = 0;
      for (let round = 0; round < opts.maxRounds; round++) {
        state = em(enc, state, weights, pairs, input.priors, opts, post);
        iterations += state.iterations;
        correlations = strongest(before, errorCorrelations(enc, post, state.q), opts.minCorrelationEvidence);
        const next = correlationWeights(F, correlations, opts);
        const changed = next.weights.some((w, f) => Math.abs(w - weights[f]) > 0.02);
        weights = next.weights;
        pairs = next.pairs;
        if (!changed) break;
        if (round === opts.maxRounds - 1) {
          state = em(enc, state, weights, pairs, input.priors, opts, post);
          iterations += state.iterations;
        }
      }
      return {
        model: 'one-coin',
        accuracies: state.accuracies,
        extra: {
          q: state.q,
          voteWeights: weights,
          iterations,
          correlated: correlations
            .filter((c) => c.evidence >= opts.minCorrelationEvidence && c.errorCorrelation > opts.correlationFloor)
            .map((c) => ({ f: c.f, g: c.g, errorCorrelation: round4(c.errorCorrelation), evidence: round4(c.evidence) })),
        },
      };
    },
    predict(weights: LabelModelWeights, votes: Vote[][]): Prediction {
      checkWeights(weights, 'one-coin');
      const F = weights.accuracies.length;
      checkVotes(votes, F);
      const voteWeights = weights.extra?.voteWeights;
      const w = Array.isArray(voteWeights) && voteWeights.length === F && voteWeights.every((x) => typeof x === 'number' && x >= 0 && x <= 1) ? (voteWeights as number[]) : undefined;
      const q = clampCollision(Number(weights.extra?.q ?? 0.1));
      const enc = encodeVotes(votes, F);
      return oneCoinDecide(enc, weights.accuracies, q, w, new Float64Array(enc.documents * F), true);
    },
  };
}

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

export const oneCoin = createOneCoinModel();
