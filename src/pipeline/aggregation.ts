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
  let errors = 0;
  const values = docs.map((_, d) =>
    functions.map((_, f) => {
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
