/**
 * Baseline: each value gets one vote per function that produced it; the most votes wins. Ties go to the value
 * of the function with the higher prior (sample score), then the lower function index. The posterior is the
 * winner's share of the votes; accuracies are each function's agreement with the winners, for reporting only.
 */
import { checkInput, checkVotes, checkWeights, encodeVotes, rankFunctions } from './encode.js';
import type { LabelModel, LabelModelInput, LabelModelWeights, Prediction, Vote } from './types.js';
import { decide } from './vote.js';

function run(votes: Vote[][], functions: number, priors: readonly number[] | undefined) {
  const enc = encodeVotes(votes, functions);
  const post = new Float64Array(enc.documents * functions);
  const prediction = decide(
    enc,
    { factor: new Float64Array(functions).fill(1), candidatePrior: 1, otherMass: () => 0, rank: rankFunctions(priors, functions), additive: true },
    post,
    true,
  );
  return { enc, post, prediction };
}

export const majorityVote: LabelModel = {
  name: 'majority',
  fit(input: LabelModelInput): LabelModelWeights {
    const F = checkInput(input);
    const { enc, prediction } = run(input.votes, F, input.priors);
    const agree = new Float64Array(F);
    const voted = new Float64Array(F);
    for (let d = 0; d < enc.documents; d++) {
      const chosen = prediction.values[d];
      for (let f = 0; f < F; f++) {
        const v = input.votes[d][f];
        if (v === null) continue;
        voted[f]++;
        if (v === chosen) agree[f]++;
      }
    }
    const accuracies = Array.from(agree, (a, f) => (voted[f] > 0 ? a / voted[f] : (input.priors?.[f] ?? 0.5)));
    return { model: 'majority', accuracies, extra: input.priors ? { priors: [...input.priors] } : {} };
  },
  predict(weights: LabelModelWeights, votes: Vote[][]): Prediction {
    checkWeights(weights, 'majority');
    const F = weights.accuracies.length;
    checkVotes(votes, F);
    const priors = weights.extra?.priors as number[] | undefined;
    return run(votes, F, priors).prediction;
  },
};
