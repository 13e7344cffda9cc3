/**
 * Scoring: every candidate runs on the sample in the sandbox and is scored by text F1 against the silver
 * labels; candidates that fail to compile, error on most documents, or never return anything are dropped.
 */
import type { CallOutcome, Sandbox, SandboxDocument } from '../sandbox/types.js';
import { textF1 } from '../weak-supervision/normalize.js';
import type { Candidate, ScoredCandidate, SilverLabels } from './types.js';

/** Agreement of one output with one silver label, the paper's way: both empty agrees fully. */
export function sampleScore(output: string[] | null, silver: string[] | null): number {
  if (silver === null) return output === null ? 1 : 0;
  if (output === null) return 0;
  return textF1(output, silver);
}

export function scoreOutcomes(candidates: readonly Candidate[], outcomes: CallOutcome[][], silver: readonly (string[] | null)[]): ScoredCandidate[] {
  return candidates.map((c, f) => {
    let score = 0;
    let errors = 0;
    let nonEmpty = 0;
    outcomes[f].forEach((o, d) => {
      if (!o.ok) {
        errors++;
        return;
      }
      if (o.value !== null && o.value.length > 0) nonEmpty++;
      score += sampleScore(o.value && o.value.length > 0 ? o.value : null, silver[d]);
    });
    return { ...c, score: outcomes[f].length ? score / outcomes[f].length : 0, errors, nonEmpty };
  });
}

export function selectTop(scored: readonly ScoredCandidate[], topK: number, sampleSize: number): ScoredCandidate[] {
  return scored
    .filter((s) => s.nonEmpty > 0 && s.score > 0 && s.errors * 2 <= sampleSize)
    .sort((a, b) => b.score - a.score || a.errors - b.errors || a.id.localeCompare(b.id))
    .slice(0, topK);
}

export async function scoreCandidates(
  sandbox: Sandbox,
  candidates: readonly Candidate[],
  sample: readonly SandboxDocument[],
  silver: SilverLabels,
  topK: number,
): Promise<{ all: ScoredCandidate[]; kept: ScoredCandidate[] }> {
  if (candidates.length === 0 || sample.length === 0) return { all: [], kept: [] };
  // Probe on one document first: a candidate that does not compile or hangs there is not run on the rest,
  // so each hanging candidate costs one timeout (and one replaced worker), not one per sample document.
  const fns = candidates.map((c) => ({ id: c.id, source: c.source }));
  const probe = await sandbox.run(fns, [sample[0]]);
  const fatal = (o: CallOutcome) => !o.ok && (o.error.code === 'compile' || o.error.code === 'timeout' || o.error.code === 'memory');
  const survivors = fns.filter((_, f) => !fatal(probe[f][0]));
  const rest = sample.length > 1 && survivors.length > 0 ? await sandbox.run(survivors, sample.slice(1)) : [];
  const restById = new Map(survivors.map((f, i) => [f.id, rest[i]]));
  const outcomes = fns.map((f, i) => [probe[i][0], ...(restById.get(f.id) ?? sample.slice(1).map(() => probe[i][0]))]);
  const all = scoreOutcomes(candidates, outcomes, sample.map((d) => silver[Number(d.id)] ?? null));
  return { all, kept: selectTop(all, topK, sample.length) };
}
