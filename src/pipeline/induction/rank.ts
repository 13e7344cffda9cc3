/**
 * Ranking by agreement with the labels, leave-one-out: a rule earns credit on a labelled document only if
 * some other labelled document proposed it, so a rule that merely memorizes one page (an anchor that is
 * that page's own neighbouring text) scores nothing there. Text F1 is the pipeline's metric (normalize.ts).
 */
import { normalizeForComparison, textF1 } from '../../weak-supervision/normalize.js';
import { cleanOutput } from './emit.js';
import type { PreparedDocument, Rule } from './types.js';

export interface RankedRule {
  rule: Rule;
  looScore: number;
  /** Leave-one-out share of documents where the output is exactly the label set (same comparison key). */
  looExact: number;
  fitScore: number;
  /** How many labelled documents proposed the rule on their own: found independently on more pages, it generalizes. */
  support: number;
  /** Normalized outputs on the labelled documents (and any unlabelled ones given), used to drop rules that behave identically. */
  signature: string;
}

export function rankRules(
  proposals: Map<string, { rule: Rule; proposedBy: Set<number> }>,
  docs: PreparedDocument[],
  golds: string[][],
  unlabelled: PreparedDocument[] = [],
): RankedRule[] {
  const ranked: RankedRule[] = [];
  for (const { rule, proposedBy } of proposals.values()) {
    let loo = 0;
    let exact = 0;
    let fit = 0;
    const outputs: (string | null)[] = [];
    for (let j = 0; j < docs.length; j++) {
      let out: string[] | null;
      try {
        out = cleanOutput(rule.apply(docs[j]));
      } catch {
        out = null;
      }
      outputs.push(normalizeForComparison(out));
      const f1 = textF1(out, golds[j].length ? golds[j] : null);
      fit += f1;
      const othersProposed = proposedBy.size > 1 || !proposedBy.has(j);
      if (othersProposed) {
        loo += f1;
        // Ties on F1 go to the rule whose output has the labels' shape: a list of authors, not one joined string,
        // since the label model compares whole comparison keys.
        if (outputs[j] === normalizeForComparison(golds[j].length ? golds[j] : null)) exact++;
      }
    }
    const n = Math.max(1, docs.length);
    ranked.push({ rule, looScore: loo / n, looExact: exact / n, fitScore: fit / n, support: proposedBy.size, signature: JSON.stringify(outputs) });
  }
  ranked.sort(
    (a, b) =>
      b.looScore - a.looScore ||
      b.looExact - a.looExact ||
      b.fitScore - a.fitScore ||
      b.support - a.support ||
      a.rule.complexity - b.rule.complexity ||
      (a.rule.key < b.rule.key ? -1 : 1),
  );
  // Outputs on documents nobody labelled tell apart rules that agree on every label; only the leaders need them.
  if (unlabelled.length) {
    for (const r of ranked.slice(0, SIGNATURE_DEPTH)) {
      const more = unlabelled.map((d) => {
        try {
          return normalizeForComparison(cleanOutput(r.rule.apply(d)));
        } catch {
          return null;
        }
      });
      r.signature = JSON.stringify([JSON.parse(r.signature), more]);
    }
  }
  return ranked;
}

/** Rules looked at on the unlabelled documents, best first; more than enough for any top-k kept. */
const SIGNATURE_DEPTH = 200;

/**
 * Best first, one rule per distinct behaviour. With unlabelled documents seen, rules that return the same values
 * on all of them and on the labels are one vote, whatever generator wrote them, so near-copies cannot outvote
 * one right rule in the label model, while rules that agree on the labels but differ elsewhere are all kept.
 * With the labels alone, that difference cannot be seen: one rule per behaviour and generator, since rules of
 * different kinds that agree on the labels can still disagree on unseen pages.
 */
export function selectRules(ranked: RankedRule[], maxCandidates: number, minScore: number, sawUnlabelled = false): RankedRule[] {
  const seen = new Set<string>();
  const picked: RankedRule[] = [];
  for (const r of ranked) {
    if (picked.length >= maxCandidates || r.looScore < minScore) break;
    const key = sawUnlabelled ? r.signature : `${r.rule.generator}\u0000${r.signature}`;
    if (seen.has(key)) continue;
    seen.add(key);
    picked.push(r);
  }
  return picked;
}
