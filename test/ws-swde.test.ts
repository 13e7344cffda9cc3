/**
 * Real data: hand-written extraction functions of mixed quality (fixtures/ws/christianbook-functions.ts) run
 * over the 40 SWDE christianbook pages in fixtures/swde; their outputs go through the label models without gold, and the
 * chosen values are scored against SWDE's gold with the paper's text F1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { AUTHOR_FUNCTIONS, PUBLISHER_FUNCTIONS, TITLE_FUNCTIONS, type Extractor } from '../fixtures/ws/christianbook-functions.js';
import { bestSingle, majorityVote, oneCoin } from '../src/weak-supervision/index.js';
import { normalizeForComparison, textF1 } from '../src/weak-supervision/normalize.js';
import type { LabelModel, Vote } from '../src/weak-supervision/types.js';

const dataDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'swde', 'book-christianbook');
const SAMPLE = 10;

let pages: string[] = [];

function readGold(attribute: string): string[][] {
  const gold: string[][] = pages.map(() => []);
  const lines = fs.readFileSync(path.join(dataDir, 'groundtruth', `${attribute}.txt`), 'utf8').split(/\r?\n/).slice(2);
  for (const line of lines) {
    const [id, , ...values] = line.split('\t');
    if (!id) continue;
    gold[Number(id)] = values.filter((v) => v !== '<NULL>' && v !== '');
  }
  return gold;
}

interface Attribute {
  names: string[];
  raw: (string | string[] | null)[][];
  votes: Vote[][];
  gold: string[][];
}

function runFunctions(attribute: string, functions: Record<string, Extractor>): Attribute {
  const names = Object.keys(functions);
  const raw = pages.map((html) => names.map((n) => functions[n](html)));
  return { names, raw, votes: raw.map((row) => row.map((v) => normalizeForComparison(v))), gold: readGold(attribute) };
}

/** Mean text F1 of the chosen values, scoring the raw output behind each chosen comparison key. */
function score(a: Attribute, values: Vote[]): number {
  let total = 0;
  values.forEach((key, d) => {
    const f = key === null ? -1 : a.votes[d].indexOf(key);
    total += textF1(f < 0 ? null : a.raw[d][f], a.gold[d]);
  });
  return total / values.length;
}

function functionScores(a: Attribute, docs: number[]): number[] {
  return a.names.map((_, f) => docs.reduce((s, d) => s + textF1(a.raw[d][f], a.gold[d]), 0) / docs.length);
}

function evaluate(a: Attribute) {
  const all = pages.map((_, d) => d);
  // Sample scores as the pipeline would get them on its sample (gold stands in for the silver labels here).
  const priors = functionScores(a, all.slice(0, SAMPLE));
  const run = (model: LabelModel, withPriors: boolean) => {
    const weights = model.fit({ votes: a.votes, ...(withPriors ? { priors } : {}) });
    return { weights, f1: score(a, model.predict(weights, a.votes).values) };
  };
  const perFunction = functionScores(a, all);
  return {
    perFunction,
    best: Math.max(...perFunction),
    oneCoin: run(oneCoin, false),
    oneCoinWithPriors: run(oneCoin, true),
    majority: run(majorityVote, false).f1,
    bestSingle: run(bestSingle, true).f1,
  };
}

const cases: [string, Record<string, Extractor>][] = [
  ['title', TITLE_FUNCTIONS],
  ['publisher', PUBLISHER_FUNCTIONS],
  ['author', AUTHOR_FUNCTIONS],
];

describe('label models on SWDE christianbook with hand-written functions', () => {
  beforeAll(() => {
    const dir = path.join(dataDir, 'pages');
    pages = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.htm'))
      .sort()
      .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
    expect(pages.length).toBe(40);
  });

  for (const [attribute, functions] of cases) {
    it(`${attribute}: at least as good as majority vote and close to the best function`, () => {
      const a = runFunctions(attribute, functions);
      const r = evaluate(a);
      console.log(
        `${attribute}: one-coin ${r.oneCoin.f1.toFixed(4)} (with priors ${r.oneCoinWithPriors.f1.toFixed(4)}), majority ${r.majority.toFixed(4)}, ` +
          `best-single-by-sample ${r.bestSingle.toFixed(4)}, best function ${r.best.toFixed(4)}; functions ` +
          a.names.map((n, f) => `${n}=${r.perFunction[f].toFixed(3)}/est ${r.oneCoin.weights.accuracies[f].toFixed(3)}`).join(' ') +
          `; vote weights ${JSON.stringify((r.oneCoin.weights.extra?.voteWeights as number[]).map((w) => Number(w.toFixed(2))))}`,
      );
      expect(r.oneCoin.f1).toBeGreaterThanOrEqual(r.majority - 1e-9);
      expect(r.oneCoinWithPriors.f1).toBeGreaterThanOrEqual(r.majority - 1e-9);
      expect(r.oneCoin.f1).toBeGreaterThan(r.best - 0.03);
      // The copied function and its original are found without being told, and count about as one.
      const voteWeights = r.oneCoin.weights.extra?.voteWeights as number[];
      const copy = a.names.findIndex((n) => n.endsWith('Copy'));
      const original = a.names.indexOf(a.names[copy].replace(/Copy$/, ''));
      expect(voteWeights[copy]).toBeLessThan(0.6);
      expect(voteWeights[original]).toBeLessThan(0.6);
      // The learned accuracies rank a good function above a sloppy one.
      const bestF = r.perFunction.indexOf(r.best);
      const worstF = r.perFunction.indexOf(Math.min(...r.perFunction));
      expect(r.oneCoin.weights.accuracies[bestF]).toBeGreaterThan(r.oneCoin.weights.accuracies[worstF] + 0.2);
    });
  }
});
