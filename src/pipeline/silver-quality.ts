/**
 * How far to trust each silver label. Direct extraction is right most of the time, not always, and one wrong
 * label must not set a column's convention (a title given once with its "(Paperback)" note made every kept
 * function return the note, at confidence 1.0, on every page that has one). Two checks:
 *  - for synthesis prompts, labels whose form agrees with the other labels are shown first, so the model is
 *    taught the sample's common convention, not one odd label's;
 *  - for scoring, a label that the well-scoring candidates overwhelmingly contradict is a dispute: with few
 *    such disputes (a minority of the sample) the candidates' consensus replaces it, and every dispute is
 *    reported with the attribute. Labels a person gave are never overruled.
 */
import type { CallOutcome } from '../sandbox/types.js';
import { normalizeForComparison } from '../weak-supervision/normalize.js';
import { sampleScore } from './scoring.js';

/** A coarse description of a label's form: how many values, brackets, a colon, digits, and its length class. */
function shapeOf(value: readonly string[] | null): string[] {
  if (value === null) return ['none'];
  const text = value.join(' ');
  const words = text.split(/\s+/).filter(Boolean).length;
  return [value.length > 1 ? 'list' : 'one', /[([]/.test(text) ? 'bracket' : '', /:/.test(text) ? 'colon' : '', /\d/.test(text) ? 'digit' : '', String(Math.floor(Math.log2(1 + words)))];
}

/**
 * Per label, the mean share of the other non-empty labels that share each feature of its form: 1 for a label
 * shaped like all the others, lower for one that alone carries brackets or twice the words. null labels get 0.
 */
export function labelTypicality(values: readonly (readonly string[] | null)[]): number[] {
  const shapes = values.map((v) => (v === null ? null : shapeOf(v)));
  return shapes.map((s, i) => {
    if (s === null) return 0;
    const others = shapes.filter((o, j): o is string[] => j !== i && o !== null);
    if (others.length === 0) return 1;
    const perFeature = s.map((feature, k) => others.filter((o) => o[k] === feature).length / others.length);
    return perFeature.reduce((a, b) => a + b, 0) / perFeature.length;
  });
}

export interface LabelDispute {
  documentId: number;
  /** The silver label as direct extraction gave it. */
  silver: string[] | null;
  /** What the candidates' consensus returns on that document. */
  consensus: string[] | null;
  /** Weighted share of the voting candidates behind the consensus. */
  support: number;
  /** True when the consensus replaced the label for scoring. */
  overruled: boolean;
  /**
   * 'contradicted': the candidates overwhelmingly return something else. 'split': a sizeable group of candidates
   * that agree with every other label return something else here, so the column's convention rests on this
   * one label: worth a look even though the table may look unanimous.
   */
  kind: 'contradicted' | 'split';
}

export interface DisputeOptions {
  /** Weighted share of the voting candidates that must stand behind the consensus. */
  minSupport: number;
  /** Mean leave-one-out score (agreement with the other labels) that the consensus's candidates must reach. */
  minAgreementElsewhere: number;
  /** Most labels overruled, as a share of the sample (at least one); more disputes than this overrule none. */
  maxShare: number;
  /** Share of the voting weight that makes a dissenting group worth reporting as a split. */
  minSplit: number;
}

export const DEFAULT_DISPUTE_OPTIONS: DisputeOptions = { minSupport: 0.66, minAgreementElsewhere: 0.9, maxShare: 0.2, minSplit: 0.25 };

/**
 * Compares each label with what the candidates say on its document, weighting each candidate by how well it
 * agrees with the *other* labels (so a candidate cannot vouch for itself), and returns the labels to score
 * against: the silver ones, with overruled labels replaced by the consensus.
 */
export function reviewSilverLabels(
  outcomes: readonly (readonly CallOutcome[])[],
  silver: readonly (string[] | null)[],
  documentIds: readonly number[],
  trusted: ReadonlySet<number>,
  options: DisputeOptions = DEFAULT_DISPUTE_OPTIONS,
): { labels: (string[] | null)[]; disputes: LabelDispute[] } {
  const n = silver.length;
  const labels = [...silver];
  if (n < 4 || outcomes.length < 2) return { labels, disputes: [] };
  const outputs = outcomes.map((row) => row.map((o) => (o.ok && o.value && o.value.length > 0 ? [...o.value] : o.ok ? null : undefined)));
  const perDoc = outputs.map((row) => row.map((v, d) => (v === undefined ? 0 : sampleScore(v, silver[d]))));
  const totals = perDoc.map((row) => row.reduce((a, b) => a + b, 0));
  const found: LabelDispute[] = [];
  for (let d = 0; d < n; d++) {
    const groups = new Map<string, { weight: number; agreement: number; members: number; value: string[] | null }>();
    let voting = 0;
    outputs.forEach((row, f) => {
      const v = row[d];
      if (v === undefined) return; // an error is no vote
      const elsewhere = (totals[f] - perDoc[f][d]) / (n - 1);
      const weight = elsewhere * elsewhere;
      if (weight <= 0) return;
      voting += weight;
      const key = normalizeForComparison(v) ?? '\u0000none';
      const g = groups.get(key) ?? { weight: 0, agreement: 0, members: 0, value: v };
      g.weight += weight;
      g.agreement += elsewhere;
      g.members += 1;
      groups.set(key, g);
    });
    if (voting <= 0) continue;
    const silverKey = normalizeForComparison(silver[d]) ?? '\u0000none';
    // The strongest group that returns something other than the label.
    const dissent = [...groups.entries()].filter(([key]) => key !== silverKey).sort((a, b) => b[1].weight - a[1].weight)[0]?.[1];
    if (!dissent || dissent.members < 2 || dissent.agreement / dissent.members < options.minAgreementElsewhere) continue;
    const support = dissent.weight / voting;
    const kind = support >= options.minSupport ? 'contradicted' : support >= options.minSplit ? 'split' : undefined;
    if (!kind) continue;
    found.push({ documentId: documentIds[d], silver: silver[d], consensus: dissent.value, support: Math.round(support * 1000) / 1000, overruled: false, kind });
  }
  const allowed = Math.max(1, Math.floor(n * options.maxShare));
  const contradicted = found.filter((f) => f.kind === 'contradicted');
  if (contradicted.length > 0 && contradicted.length <= allowed) {
    for (const dispute of contradicted) {
      if (trusted.has(dispute.documentId)) continue;
      dispute.overruled = true;
      labels[documentIds.indexOf(dispute.documentId)] = dispute.consensus;
    }
  }
  return { labels, disputes: found };
}
