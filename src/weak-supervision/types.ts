/**
 * Label models combine the votes of extraction functions per document without gold labels.
 * A vote is a value already normalized for comparison (normalize.ts), or null for an abstain.
 * Values differ per document, so models treat each function's accuracy independently of the
 * value it votes for (one-coin models).
 */
export type Vote = string | null;

export interface LabelModelInput {
  /** votes[d][f]: function f's normalized output on document d, or null when it abstained. */
  votes: Vote[][];
  /** Optional per-function prior accuracy (e.g. F1 against silver labels on the sample), 0..1. */
  priors?: number[];
}

/** What a fitted model keeps, so nightly runs can predict on new documents without refitting. */
export interface LabelModelWeights {
  model: string;
  accuracies: number[];
  /**
   * Model-specific extras, JSON-serializable. one-coin: q (chance two wrong votes coincide), voteWeights (1 =
   * independent, about 1/k for k copies), correlated (pairs found, with their error correlation), iterations.
   * triplet: q. majority: priors (tie order). best-single: best (function index, -1 for none).
   */
  extra?: Record<string, unknown>;
}

export interface Prediction {
  /** Chosen value per document (null when every function abstained). */
  values: Vote[];
  /** Posterior probability of the chosen value per document (0 when null). */
  posteriors: number[];
}

export interface LabelModel {
  readonly name: string;
  fit(input: LabelModelInput): LabelModelWeights;
  predict(weights: LabelModelWeights, votes: Vote[][]): Prediction;
}
