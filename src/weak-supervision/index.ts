/** The label models by name, so the pipeline and stored weights can refer to them as plain strings. */
import { EvaporateError } from '../errors.js';
import { bestSingle } from './best-single.js';
import { majorityVote } from './majority.js';
import { createOneCoinModel, oneCoin, type OneCoinOptions } from './one-coin.js';
import { tripletModel } from './triplet.js';
import type { LabelModel } from './types.js';

export type LabelModelName = 'one-coin' | 'triplet' | 'majority' | 'best-single';
export const LABEL_MODEL_NAMES: readonly LabelModelName[] = ['one-coin', 'triplet', 'majority', 'best-single'];

export function labelModel(name: string, options?: Partial<OneCoinOptions>): LabelModel {
  switch (name) {
    case 'one-coin':
      return options ? createOneCoinModel(options) : oneCoin;
    case 'triplet':
      return tripletModel;
    case 'majority':
      return majorityVote;
    case 'best-single':
      return bestSingle;
    default:
      throw new EvaporateError('unknown_label_model', `There is no label model named "${name}"; choose one of ${LABEL_MODEL_NAMES.join(', ')}.`, 400);
  }
}

/** The model a settings block names (config.ts `labelModel`), with its tuning applied. */
export function labelModelFromSettings(settings: { name: string } & Partial<OneCoinOptions>): LabelModel {
  const { name, ...options } = settings;
  return labelModel(name, options);
}

export { bestSingle, majorityVote, oneCoin, tripletModel, createOneCoinModel };
export type { OneCoinOptions };
export * from './types.js';
export { normalizeForComparison, textF1 } from './normalize.js';
