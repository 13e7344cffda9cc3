/**
 * Baseline: trust only the function with the best sample score (its prior), as the paper's "best single
 * function". Where it abstains the cell stays empty; the posterior is its sample score.
 */
import { EvaporateError } from '../errors.js';
import { checkInput, checkVotes, checkWeights } from './encode.js';
import type { LabelModel, LabelModelInput, LabelModelWeights, Prediction, Vote } from './types.js';

export const bestSingle: LabelModel = {
  name: 'best-single',
  fit(input: LabelModelInput): LabelModelWeights {
    const F = checkInput(input);
    if (!input.priors) {
      throw new EvaporateError('label_priors_required', 'The best-single-function model needs each function\'s sample score (priors).', 400);
    }
    // -1: no function at all, every cell stays empty.
    let best = F > 0 ? 0 : -1;
    for (let f = 1; f < F; f++) if (input.priors[f] > input.priors[best]) best = f;
    return { model: 'best-single', accuracies: [...input.priors], extra: { best } };
  },
  predict(weights: LabelModelWeights, votes: Vote[][]): Prediction {
    checkWeights(weights, 'best-single');
    const F = weights.accuracies.length;
    checkVotes(votes, F);
    const best = weights.extra?.best;
    if (typeof best !== 'number' || !Number.isInteger(best) || best < -1 || best >= F || (best === -1 && F > 0)) {
      throw new EvaporateError('invalid_label_input', 'Best-single weights must name the chosen function.', 400);
    }
    const values = votes.map((row) => (best < 0 ? null : row[best]));
    const score = best < 0 ? 0 : weights.accuracies[best];
    return { values, posteriors: values.map((v) => (v === null ? 0 : score)) };
  },
};
