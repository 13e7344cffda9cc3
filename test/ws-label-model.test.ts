import { describe, expect, it } from 'vitest';
import { CORRELATED, EQUAL, SAME_MISTAKE, TOP10, WIDE, chosenAccuracy, generate } from '../fixtures/ws/synthetic.js';
import { EvaporateError } from '../src/errors.js';
import { loadSettings } from '../src/config.js';
import { bestSingle, labelModel, labelModelFromSettings, majorityVote, oneCoin, tripletModel } from '../src/weak-supervision/index.js';

const DOCS = 2000;
const maxError = (estimated: number[], truth: number[]) => Math.max(...estimated.map((a, f) => Math.abs(a - truth[f])));
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

function compare(specs: typeof WIDE, seed: number) {
  const data = generate(specs, DOCS, seed);
  const weights = oneCoin.fit({ votes: data.votes });
  const prediction = oneCoin.predict(weights, data.votes);
  const mv = majorityVote.predict(majorityVote.fit({ votes: data.votes }), data.votes);
  return { data, weights, prediction, oneCoinAccuracy: chosenAccuracy(prediction.values, data.truth), majorityAccuracy: chosenAccuracy(mv.values, data.truth) };
}

describe('one-coin label model on synthetic functions with known accuracies', () => {
  it('estimates accuracies within 0.05 and beats majority vote when accuracies differ widely', () => {
    const { data, weights, oneCoinAccuracy, majorityAccuracy } = compare(WIDE, 1);
    expect(maxError(weights.accuracies, data.accuracies)).toBeLessThan(0.05);
    expect(oneCoinAccuracy).toBeGreaterThan(majorityAccuracy + 0.01);
  });

  it('is no worse than majority vote when accuracies are equal', () => {
    // With equal accuracies both rules are equally good in expectation; per seed they differ only on ties and
    // near-ties, so the claim is checked on the average over seeds, with a bound on any single seed.
    const gains: number[] = [];
    for (const seed of [1, 2, 3, 4, 5]) {
      const { data, weights, oneCoinAccuracy, majorityAccuracy } = compare(EQUAL, seed);
      expect(maxError(weights.accuracies, data.accuracies)).toBeLessThan(0.05);
      gains.push(oneCoinAccuracy - majorityAccuracy);
    }
    expect(mean(gains)).toBeGreaterThanOrEqual(-0.002);
    expect(Math.min(...gains)).toBeGreaterThan(-0.015);
  });

  it('detects a near-copy pair and does not let it outvote a more accurate independent function', () => {
    const { data, weights, prediction, oneCoinAccuracy, majorityAccuracy } = compare(CORRELATED, 1);
    expect(maxError(weights.accuracies, data.accuracies)).toBeLessThan(0.05);
    const voteWeights = weights.extra?.voteWeights as number[];
    expect(voteWeights[1]).toBeLessThan(0.6);
    expect(voteWeights[2]).toBeLessThan(0.6);
    expect(voteWeights[0]).toBe(1);
    // Head to head: the copies agree on one value, the accurate function says another, nobody else votes.
    let contested = 0;
    let accurateWins = 0;
    for (let d = 0; d < DOCS; d++) {
      const [a, p1, p2, ...rest] = data.votes[d];
      if (a !== null && p1 !== null && p1 === p2 && a !== p1 && rest.every((v) => v === null)) {
        contested++;
        if (prediction.values[d] === a) accurateWins++;
      }
    }
    expect(contested).toBeGreaterThan(20);
    expect(accurateWins).toBe(contested);
    // Majority vote counts the copies twice; the label model should not.
    expect(oneCoinAccuracy).toBeGreaterThan(majorityAccuracy + 0.03);
  });

  it('down-weights functions that are independent when right but wrong in the same way', () => {
    const { data, weights, prediction, oneCoinAccuracy, majorityAccuracy } = compare(SAME_MISTAKE, 3);
    expect(maxError(weights.accuracies, data.accuracies)).toBeLessThan(0.05);
    const voteWeights = weights.extra?.voteWeights as number[];
    // Sharing only mistakes is a weaker tie than being copies, so the down-weighting is milder than 1/2.
    expect(voteWeights[1]).toBeLessThan(0.8);
    expect(voteWeights[2]).toBeLessThan(0.8);
    expect(Math.min(voteWeights[0], ...voteWeights.slice(3))).toBeGreaterThan(0.9);
    let contested = 0;
    let accurateWins = 0;
    for (let d = 0; d < DOCS; d++) {
      const [a, p1, p2, ...rest] = data.votes[d];
      if (a !== null && p1 !== null && p1 === p2 && a !== p1 && rest.every((v) => v === null)) {
        contested++;
        if (prediction.values[d] === a) accurateWins++;
      }
    }
    expect(contested).toBeGreaterThan(20);
    expect(accurateWins).toBe(contested);
    expect(oneCoinAccuracy).toBeGreaterThanOrEqual(majorityAccuracy);
  });

  it('without the copy handling, the same pair would outvote the accurate function', () => {
    const data = generate(CORRELATED, DOCS, 1);
    const naive = labelModel('one-coin', { correlationFloor: 1, copyCorrelation: 2 });
    const prediction = naive.predict(naive.fit({ votes: data.votes }), data.votes);
    const handled = oneCoin.predict(oneCoin.fit({ votes: data.votes }), data.votes);
    expect(chosenAccuracy(handled.values, data.truth)).toBeGreaterThan(chosenAccuracy(prediction.values, data.truth));
  });

  it('is stable across random seeds', () => {
    const accuracies: number[] = [];
    for (const seed of [11, 12, 13, 14, 15]) {
      const { data, weights, oneCoinAccuracy, majorityAccuracy } = compare(TOP10, seed);
      expect(maxError(weights.accuracies, data.accuracies)).toBeLessThan(0.05);
      expect(oneCoinAccuracy).toBeGreaterThanOrEqual(majorityAccuracy);
      accuracies.push(oneCoinAccuracy);
    }
    expect(Math.max(...accuracies) - Math.min(...accuracies)).toBeLessThan(0.02);
  });

  it('reports posteriors that match how often the chosen value is right', () => {
    for (const specs of [WIDE, CORRELATED, TOP10]) {
      const { prediction, oneCoinAccuracy } = compare(specs, 7);
      expect(Math.abs(mean(prediction.posteriors) - oneCoinAccuracy)).toBeLessThan(0.05);
    }
  });

  it('predicts on new documents with stored weights, as a nightly run does, without refitting', () => {
    const train = generate(TOP10, DOCS, 21);
    const fresh = generate(TOP10, 500, 22);
    const stored = JSON.parse(JSON.stringify(oneCoin.fit({ votes: train.votes })));
    const reused = oneCoin.predict(stored, fresh.votes);
    const refit = oneCoin.predict(oneCoin.fit({ votes: fresh.votes }), fresh.votes);
    expect(chosenAccuracy(reused.values, fresh.truth)).toBeGreaterThanOrEqual(chosenAccuracy(refit.values, fresh.truth) - 0.01);
    const same = reused.values.filter((v, d) => v === refit.values[d]).length;
    expect(same / fresh.votes.length).toBeGreaterThan(0.98);
  });

  it('uses priors as pseudo-votes, which matter on a tiny corpus and fade on a large one', () => {
    const small = generate(WIDE, 30, 5);
    const priors = [0.95, 0.85, 0.75, 0.6, 0.5, 0.4, 0.35];
    const withPriors = oneCoin.fit({ votes: small.votes, priors });
    const without = oneCoin.fit({ votes: small.votes });
    expect(mean(withPriors.accuracies.map((a, f) => Math.abs(a - priors[f])))).toBeLessThan(mean(without.accuracies.map((a, f) => Math.abs(a - priors[f]))));
    const large = generate(WIDE, DOCS, 5);
    const misleading = [0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9];
    expect(maxError(oneCoin.fit({ votes: large.votes, priors: misleading }).accuracies, large.accuracies)).toBeLessThan(0.05);
  });
});

describe('label model edge cases', () => {
  it('gives null and posterior 0 where every function abstains', () => {
    for (const model of [oneCoin, tripletModel, majorityVote]) {
      const votes = [[null, null, null], ['a', 'a', null], ['b', null, 'b']];
      const p = model.predict(model.fit({ votes }), votes);
      expect(p.values[0]).toBeNull();
      expect(p.posteriors[0]).toBe(0);
      expect(p.values[1]).toBe('a');
      expect(p.posteriors[1]).toBeGreaterThan(0.5);
    }
  });

  it('breaks ties deterministically: by prior, then by function order', () => {
    const votes = [['x', 'y'], ['y', 'x']];
    const mv = majorityVote.predict(majorityVote.fit({ votes }), votes);
    expect(mv.values).toEqual(['x', 'y']);
    const preferSecond = majorityVote.predict(majorityVote.fit({ votes, priors: [0.2, 0.9] }), votes);
    expect(preferSecond.values).toEqual(['y', 'x']);
    const a = oneCoin.predict(oneCoin.fit({ votes }), votes);
    const b = oneCoin.predict(oneCoin.fit({ votes }), votes);
    expect(a).toEqual(b);
    expect(a.posteriors[0]).toBeCloseTo(a.posteriors[1], 10);
  });

  it('best single function follows the highest prior and leaves its abstains empty', () => {
    const votes = [['a', 'b', 'c'], ['a', null, 'c']];
    const w = bestSingle.fit({ votes, priors: [0.3, 0.9, 0.5] });
    const p = bestSingle.predict(w, votes);
    expect(p.values).toEqual(['b', null]);
    expect(p.posteriors).toEqual([0.9, 0]);
    expect(() => bestSingle.fit({ votes })).toThrow(EvaporateError);
  });

  it('rejects malformed input with a stable code', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e instanceof EvaporateError ? e.code : 'other';
      }
      return 'none';
    };
    expect(code(() => oneCoin.fit({ votes: [['a', 'b'], ['a']] }))).toBe('invalid_label_input');
    expect(code(() => oneCoin.fit({ votes: [['a', 3 as unknown as string]] }))).toBe('invalid_label_input');
    expect(code(() => oneCoin.fit({ votes: [['a', 'b']], priors: [0.5, 2] }))).toBe('invalid_label_input');
    const w = oneCoin.fit({ votes: [['a', 'b']] });
    expect(code(() => oneCoin.predict(w, [['a', 'b', 'c']]))).toBe('invalid_label_input');
    expect(code(() => majorityVote.predict(w, [['a', 'b']]))).toBe('invalid_label_input');
    expect(code(() => labelModel('snorkel'))).toBe('unknown_label_model');
  });

  it('builds the configured model from settings', () => {
    const settings = loadSettings();
    const model = labelModelFromSettings({ ...settings.labelModel, name: 'one-coin' });
    const data = generate(WIDE, 300, 9);
    expect(model.predict(model.fit({ votes: data.votes }), data.votes)).toEqual(oneCoin.predict(oneCoin.fit({ votes: data.votes }), data.votes));
    expect(labelModelFromSettings({ ...settings.labelModel, name: 'majority' }).name).toBe('majority');
  });

  it('fits an empty corpus without failing', () => {
    const w = oneCoin.fit({ votes: [], priors: [] });
    expect(w.accuracies).toEqual([]);
    expect(oneCoin.predict(w, []).values).toEqual([]);
  });
});
