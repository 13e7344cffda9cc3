/**
 * Aggregation: the kept functions' outputs over a batch become votes (normalized values); the label model,
 * fitted on the whole corpus's votes without gold, picks each document's value and its confidence.
 */
import type { CallOutcome, ExtractionFunction, Sandbox, SandboxDocument } from '../sandbox/types.js';
import type { LabelModel } from '../weak-supervision/types.js';
import { distinctValues, voteKeys } from './list-values.js';

/** One batch's outputs: per document, per function, the raw values (null = abstain or error). */
export interface BatchOutputs {
  documentIds: number[];
  values: (string[] | null)[][];
  errors: number;
  /** The job's failure count per function id after this batch, so a resumed job disables the same functions. */
  failures?: Record<string, number>;
}

/**
 * Runs the functions over one batch. `failures` (function id -> failures so far in this job) carries the
 * sandbox's per-function failure limit across batches: a function that failed too often stays disabled.
 */
export async function runBatch(
  sandbox: Sandbox,
  functions: readonly ExtractionFunction[],
  docs: readonly SandboxDocument[],
  failures?: Map<string, number>,
): Promise<BatchOutputs> {
  const outcomes: CallOutcome[][] = functions.length ? await sandbox.run([...functions], [...docs], failures ? { failures } : {}) : [];
  return outputsOf(outcomes, functions.length, docs, failures);
}

/**
 * Every attribute's functions over one batch in a single sandbox call. Each document then crosses into the
 * sandbox, and has its DOM built, once per batch rather than once per attribute: with 5 attributes over HTML
 * pages that halves the corpus pass. `failures` holds each attribute's counts (function id -> failures) and
 * is updated in place, as runBatch updates its map.
 */
export async function runAttributes(
  sandbox: Sandbox,
  attributes: readonly { name: string; functions: readonly ExtractionFunction[] }[],
  docs: readonly SandboxDocument[],
  failures: Map<string, Map<string, number>>,
): Promise<Record<string, BatchOutputs>> {
  // An id two attributes share (the same source kept for both) is made distinct inside the call, so each
  // keeps its own failure count; other ids pass unchanged (a function the crash guard disabled stays so).
  const seen = new Set<string>();
  const calls = attributes.map((a, i) =>
    a.functions.map((f) => {
      const id = seen.has(f.id) ? `${i}\u0000${f.id}` : f.id;
      seen.add(id);
      return { id, fn: f.id };
    }),
  );
  const counts = new Map<string, number>();
  attributes.forEach((a, i) => calls[i].forEach((c) => counts.set(c.id, failures.get(a.name)?.get(c.fn) ?? 0)));
  const flat = attributes.flatMap((a, i) => a.functions.map((f, j) => ({ ...f, id: calls[i][j].id })));
  const outcomes: CallOutcome[][] = flat.length ? await sandbox.run(flat, [...docs], { failures: counts }) : [];
  const out: Record<string, BatchOutputs> = Object.create(null); // keyed by attribute name
  let at = 0;
  attributes.forEach((a, i) => {
    const own = failures.get(a.name) ?? failures.set(a.name, new Map()).get(a.name)!;
    for (const c of calls[i]) own.set(c.fn, counts.get(c.id) ?? 0);
    out[a.name] = outputsOf(outcomes.slice(at, (at += a.functions.length)), a.functions.length, docs, own);
  });
  return out;
}

/** Outcomes (per function, per document) as a batch's votes: a value list, or null for an abstention or an error. */
function outputsOf(outcomes: CallOutcome[][], functionCount: number, docs: readonly SandboxDocument[], failures?: Map<string, number>): BatchOutputs {
  let errors = 0;
  const values = docs.map((_, d) =>
    Array.from({ length: functionCount }, (_, f) => {
      const o = outcomes[f][d];
      if (!o.ok) {
        errors++;
        return null;
      }
      return o.value && o.value.length > 0 ? o.value : null;
    }),
  );
  return { documentIds: docs.map((d) => Number(d.id)), values, errors, ...(failures ? { failures: Object.fromEntries(failures) } : {}) };
}

export interface CellDecision {
  documentId: number;
  /** Chosen value as one function wrote it (the first agreeing function's output), or null. */
  value: string[] | null;
  confidence: number;
  /** Indexes of the functions whose vote equals the chosen value. */
  agreeing: number[];
}

function fullest(outputs: readonly (string[] | null)[]): string[] | null {
  let best: string[] | null = null;
  for (const o of outputs) if (o && (best === null || distinctValues(o).length > distinctValues(best).length)) best = o;
  return best;
}

export function aggregate(
  model: LabelModel,
  batches: readonly BatchOutputs[],
  priors: readonly number[],
  /** listShaped: several values per document are expected (see voteKeys). */
  options: { listShaped?: boolean } = {},
): { cells: CellDecision[]; accuracies: number[] } {
  const rows = batches.flatMap((b) => b.values.map((v, i) => ({ id: b.documentIds[i], raw: v })));
  const votes = rows.map((r) => voteKeys(r.raw, options.listShaped ?? false, priors));
  if (rows.length === 0 || priors.length === 0) return { cells: rows.map((r) => ({ documentId: r.id, value: null, confidence: 0, agreeing: [] })), accuracies: [] };
  const weights = model.fit({ votes, priors: [...priors] });
  const prediction = model.predict(weights, votes);
  const cells = rows.map((r, d) => {
    const chosen = prediction.values[d];
    const agreeing = chosen === null ? [] : votes[d].flatMap((v, f) => (v === chosen ? [f] : []));
    return {
      documentId: r.id,
      // The fullest of the agreeing outputs: a list over the same values joined in one string, all genres over one.
      value: agreeing.length ? fullest(agreeing.map((f) => r.raw[f])) : null,
      confidence: chosen === null ? 0 : prediction.posteriors[d],
      agreeing,
    };
  });
  return { cells, accuracies: weights.accuracies };
}
