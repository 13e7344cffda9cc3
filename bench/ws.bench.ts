/**
 * Label-model speed and quality: fit + predict over 100,000 documents x 10 synthetic functions (target under
 * 1 s on one core), and, on the same data, how close each model's accuracy estimates come to the truth and
 * how often its chosen value is right.
 */
import { TOP10, chosenAccuracy, generate } from '../fixtures/ws/synthetic.js';
import { majorityVote, normalizeForComparison, oneCoin, tripletModel } from '../src/weak-supervision/index.js';
import type { LabelModel } from '../src/weak-supervision/types.js';
import type { BenchResult } from './lib.js';

const DOCUMENTS = 100_000;
const REPEATS = 5;

function time(model: LabelModel, votes: (string | null)[][]) {
  const runs: number[] = [];
  let result!: { weights: ReturnType<LabelModel['fit']>; prediction: ReturnType<LabelModel['predict']> };
  for (let r = 0; r < REPEATS; r++) {
    const start = performance.now();
    const weights = model.fit({ votes });
    const prediction = model.predict(weights, votes);
    runs.push(performance.now() - start);
    result = { weights, prediction };
  }
  runs.sort((a, b) => a - b);
  return { medianMs: runs[REPEATS >> 1], minMs: runs[0], ...result };
}

export default async function bench(): Promise<BenchResult> {
  const data = generate(TOP10, DOCUMENTS, 42);
  const rows: BenchResult['rows'] = [];
  const targets: Record<string, boolean> = {};
  for (const model of [oneCoin, tripletModel, majorityVote]) {
    const { medianMs, minMs, weights, prediction } = time(model, data.votes);
    const maxError = Math.max(...weights.accuracies.map((a, f) => Math.abs(a - data.accuracies[f])));
    rows.push({
      model: model.name,
      documents: DOCUMENTS,
      functions: TOP10.length,
      'fit+predict median ms': Math.round(medianMs),
      'fit+predict min ms': Math.round(minMs),
      'chosen accuracy': Number(chosenAccuracy(prediction.values, data.truth).toFixed(4)),
      'max accuracy error': Number(maxError.toFixed(4)),
      'mean posterior': Number((prediction.posteriors.reduce((s, p) => s + p, 0) / DOCUMENTS).toFixed(4)),
      'em iterations': (weights.extra?.iterations as number | undefined) ?? null,
    });
    if (model === oneCoin) targets['one-coin fit+predict 100k docs x 10 functions < 1000 ms (median)'] = medianMs < 1000;
  }
  // Every function output is normalized before voting: its cost per value, on raw-looking strings.
  const raw = ['Know Your Bible: All 66 Books Explained and Applied', 'Paul Kent', '978-1-60260-015-7', 'Value Books / 2008 / Paperback', 'January 5, 2008', 'Café &amp; Ｆｕｌｌ'];
  const calls = 300_000;
  const start = performance.now();
  for (let i = 0; i < calls; i++) normalizeForComparison(raw[i % raw.length] + (i % 11));
  const perValueUs = ((performance.now() - start) * 1000) / calls;
  rows.push({ model: 'normalizeForComparison', documents: calls, functions: 1, 'fit+predict median ms': null, 'fit+predict min ms': null, 'chosen accuracy': null, 'max accuracy error': null, 'mean posterior': null, 'em iterations': null, 'us per value': Number(perValueUs.toFixed(2)) });
  return {
    name: 'ws',
    rows,
    targets,
    notes: [`median of ${REPEATS} runs, one thread; synthetic functions fixtures/ws/synthetic.ts TOP10 (accuracies 0.4-0.92, a near-copy pair), seed 42`],
  };
}
