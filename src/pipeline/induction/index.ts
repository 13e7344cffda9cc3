/**
 * Entry point of wrapper induction: labelled documents in, candidate functions out, no LLM involved.
 * Each labelled document proposes rules from where its values sit (text anchors, value shapes, DOM paths and
 * labels); every rule is
 * then scored on all labelled documents, leave-one-out, and the best distinct ones are emitted as readable
 * source in the sandbox contract.
 */
import { EvaporateError } from '../../errors.js';
import { emitSource, splitterSource } from './emit.js';
import { cleanLabels } from './labels.js';
import { prepareDocument } from './prepare.js';
import { rankRules, selectRules } from './rank.js';
import { proposeDomRules } from './dom-paths.js';
import { proposePartialText } from './partial-text.js';
import { labelsNear, proposeTextAnchors, separatorsBetween } from './text-anchors.js';
import { proposeValueShapes } from './value-shapes.js';
import type { InducedCandidate, InductionOptions, LabelledExample, Rule } from './types.js';

export type { InducedCandidate, InductionOptions, LabelledExample } from './types.js';
export { prepareDocument } from './prepare.js';

export const DEFAULT_MAX_CANDIDATES = 10;
export const DEFAULT_MIN_SCORE = 0.5;
export const DEFAULT_MAX_EXAMPLES = 50;

export interface InductionResult {
  candidates: InducedCandidate[];
  /** How many distinct rules were proposed and scored, for reporting. */
  proposed: number;
}

export function induceCandidates(attribute: string, examples: LabelledExample[], options: InductionOptions = {}): InductionResult {
  if (examples.length < 2) {
    throw new EvaporateError('too_few_labels', `Learning "${attribute}" needs labels on at least 2 documents (got ${examples.length}); label more documents.`, 400);
  }
  const maxCandidates = options.maxCandidates ?? DEFAULT_MAX_CANDIDATES;
  const minScore = options.minScore ?? DEFAULT_MIN_SCORE;
  examples = examples.slice(0, options.maxExamples ?? DEFAULT_MAX_EXAMPLES);
  const docs = examples.map((e) => prepareDocument(e.document));
  const golds = cleanLabels(attribute, examples.map((e) => e.values));
  const multiValued = golds.some((g) => g.length > 1);
  const split = splitterSource(golds.flatMap((g, i) => separatorsBetween(docs[i].lines(), g)));

  const proposals = new Map<string, { rule: Rule; proposedBy: Set<number> }>();
  golds.forEach((values, i) => {
    if (!values.length) return;
    const rules: Rule[] = [
      ...proposeTextAnchors(docs[i], values, split, multiValued),
      ...proposeValueShapes(docs[i], values),
      ...proposeDomRules(docs[i], values, labelsNear(docs[i], values), multiValued),
      ...proposePartialText(docs[i], values),
    ];
    for (const rule of rules) {
      const entry = proposals.get(rule.key) ?? { rule, proposedBy: new Set<number>() };
      entry.proposedBy.add(i);
      proposals.set(rule.key, entry);
    }
  });

  const unlabelled = (options.unlabelled ?? []).map(prepareDocument);
  const picked = selectRules(rankRules(proposals, docs, golds, unlabelled), maxCandidates, minScore, unlabelled.length > 0);
  const candidates = picked.map(({ rule, looScore, fitScore }) => ({
    source: emitSource(rule, `Learned for "${attribute}" from ${examples.length} labelled documents; leave-one-out F1 ${looScore.toFixed(2)}.`),
    origin: 'induction' as const,
    description: rule.description,
    generator: rule.generator,
    looScore,
    fitScore,
  }));
  return { candidates, proposed: proposals.size };
}
