/**
 * Scoring: every candidate runs on the sample in the sandbox and is scored by text F1 against the silver
 * labels; candidates that fail to compile, error on most documents, or never return anything are dropped.
 */
import type { CallOutcome, Sandbox, SandboxDocument } from '../sandbox/types.js';
import { normalizeForComparison, textF1 } from '../weak-supervision/normalize.js';
import { listF1 } from './list-values.js';
import { reviewSilverLabels, type LabelDispute } from './silver-quality.js';
import type { Candidate, ScoredCandidate, SilverLabels } from './types.js';

/** Agreement of one output with one silver label, the paper's way: both empty agrees fully. */
export function sampleScore(output: string[] | null, silver: string[] | null): number {
  if (silver === null) return output === null ? 1 : 0;
  if (output === null) return 0;
  return output.length > 1 || silver.length > 1 ? listF1(output, silver) : textF1(output, silver);
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

/**
 * The top-k candidates. With `behaviours` (candidate id -> what it returned on the sample), candidates within
 * one document's worth of score of the best (they disagree with at most one label) are taken in turns across
 * distinct behaviours before the rest fill by score: many copies of one behaviour fitting one odd label must
 * not crowd out a different behaviour that misses only that label; the label model then arbitrates.
 */
export function selectTop(
  scored: readonly ScoredCandidate[],
  topK: number,
  sampleSize: number,
  behaviours?: ReadonlyMap<string, string>,
): ScoredCandidate[] {
  const eligible = scored
    .filter((s) => s.nonEmpty > 0 && s.score > 0 && s.errors * 2 <= sampleSize)
    .sort((a, b) => b.score - a.score || a.errors - b.errors || a.id.localeCompare(b.id));
  if (!behaviours || eligible.length <= topK) return eligible.slice(0, topK);
  const margin = 1 / Math.max(1, sampleSize) + 1e-9;
  const near = eligible.filter((s) => s.score >= eligible[0].score - margin);
  const groups = new Map<string, ScoredCandidate[]>();
  for (const c of near) {
    const key = behaviours.get(c.id) ?? c.id;
    (groups.get(key) ?? groups.set(key, []).get(key)!).push(c);
  }
  const picked: ScoredCandidate[] = [];
  for (let round = 0; picked.length < topK; round++) {
    const before = picked.length;
    for (const g of groups.values()) if (round < g.length && picked.length < topK) picked.push(g[round]);
    if (picked.length === before) break;
  }
  const taken = new Set(picked.map((c) => c.id));
  for (const c of eligible) if (picked.length < topK && !taken.has(c.id)) picked.push(c);
  return picked.sort((a, b) => b.score - a.score || a.errors - b.errors || a.id.localeCompare(b.id));
}

/** What a candidate returned on the sample, as one comparable string (errors included). */
function behaviourOf(outcomes: readonly CallOutcome[]): string {
  return outcomes.map((o) => (o.ok ? (normalizeForComparison(o.value) ?? '') : `!${o.error.code}`)).join('\u0001');
}

export async function scoreCandidates(
  sandbox: Sandbox,
  candidates: readonly Candidate[],
  sample: readonly SandboxDocument[],
  silver: SilverLabels,
  topK: number,
  /** Documents whose labels a person gave: never overruled by the candidates' consensus. */
  options: { trusted?: ReadonlySet<number> } = {},
): Promise<{ all: ScoredCandidate[]; kept: ScoredCandidate[]; disputes: LabelDispute[] }> {
  if (candidates.length === 0 || sample.length === 0) return { all: [], kept: [], disputes: [] };
  // Probe on one document first: a candidate that does not compile or hangs there is not run on the rest,
  // so each hanging candidate costs one timeout (and one replaced worker), not one per sample document.
  const fns = candidates.map((c) => ({ id: c.id, source: c.source }));
  const probe = await sandbox.run(fns, [sample[0]]);
  const fatal = (o: CallOutcome) => !o.ok && (o.error.code === 'compile' || o.error.code === 'timeout' || o.error.code === 'memory');
  const survivors = fns.filter((_, f) => !fatal(probe[f][0]));
  const rest = sample.length > 1 && survivors.length > 0 ? await sandbox.run(survivors, sample.slice(1)) : [];
  const restById = new Map(survivors.map((f, i) => [f.id, rest[i]]));
  const outcomes = fns.map((f, i) => [probe[i][0], ...(restById.get(f.id) ?? sample.slice(1).map(() => probe[i][0]))]);
  const ids = sample.map((d) => Number(d.id));
  const reviewed = reviewSilverLabels(outcomes, ids.map((id) => silver[id] ?? null), ids, options.trusted ?? new Set());
  const all = scoreOutcomes(candidates, outcomes, reviewed.labels);
  // While a dispute stands (a label split the candidates, or could not be overruled), the column's convention
  // rests on one label: keep both behaviours and let the label model arbitrate over the corpus.
  const unresolved = reviewed.disputes.some((d) => !d.overruled);
  const behaviours = unresolved ? new Map(candidates.map((c, f) => [c.id, behaviourOf(outcomes[f])])) : undefined;
  return { all, kept: selectTop(all, topK, sample.length, behaviours), disputes: reviewed.disputes };
}
