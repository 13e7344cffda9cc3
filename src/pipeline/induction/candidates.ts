/**
 * The seam to the extract job (ExtractDeps.extraCandidates): induced functions join the LLM-written ones
 * before scoring. They learn from the user's labels of the attribute where there are any (every labelled
 * document, sampled or not) and from the sample's silver labels for the rest.
 */
import crypto from 'node:crypto';
import type { Settings } from '../../config.js';
import { decodeHtml } from '../../ingest/html.js';
import type { Db } from '../../store/database.js';
import { labelledDocuments } from '../../store/labels.js';
import type { AttributeSpec, Candidate, PipelineDocument, SilverLabels } from '../types.js';
import { induceCandidates } from './index.js';
import type { LabelledExample } from './types.js';

export interface InductionInput {
  attribute: AttributeSpec;
  sample: PipelineDocument[];
  silver: SilverLabels;
  /** Labels a person gave; they win over the silver label of the same document. */
  given?: LabelledExample[];
}

export function inducedForPipeline(input: InductionInput, options: { maxCandidates: number; minScore: number; maxExamples?: number }): Candidate[] {
  // Given labels first, so they are the ones kept when there are more examples than induction takes.
  const examples = new Map<number, LabelledExample>();
  for (const g of input.given ?? []) examples.set(Number(g.document.id), g);
  for (const doc of input.sample) {
    if (!(doc.id in input.silver) || examples.has(doc.id)) continue;
    examples.set(doc.id, { document: { id: doc.id, text: doc.text, html: doc.html }, values: input.silver[doc.id] ?? [] });
  }
  // Nothing can be learned, or checked leave-one-out, from fewer than two documents that carry a value.
  if ([...examples.values()].filter((e) => e.values.length).length < 2) return [];
  const unlabelled = input.sample.filter((d) => !examples.has(d.id)).map((d) => ({ id: d.id, text: d.text, html: d.html }));
  const { candidates } = induceCandidates(input.attribute.name, [...examples.values()], { ...options, unlabelled });
  return candidates.map((c) => ({
    id: 'induction:' + crypto.createHash('sha256').update(c.source).digest('hex').slice(0, 16),
    source: c.source,
    origin: 'induction' as const,
    prompt: `induction:${c.generator}`,
  }));
}

/** A corpus's labels of one attribute as induction examples, HTML decoded with its sniffed charset as ingest does. */
export function labelledExamples(db: Db, corpus: number | string, attribute: string): LabelledExample[] {
  return labelledDocuments(db, corpus, attribute).map((d) => ({
    document: { id: d.id, text: d.text, ...(d.kind === 'html' && d.raw ? { html: decodeHtml(d.raw) } : {}) },
    values: d.values,
  }));
}

/** ExtractDeps.extraCandidates for a database: reads the attribute's user labels, then induces. */
export function inductionHook(db: Db, settings: Settings) {
  return async (input: { corpusId: number; attribute: AttributeSpec; sample: PipelineDocument[]; silver: SilverLabels }): Promise<Candidate[]> =>
    inducedForPipeline(
      { ...input, given: labelledExamples(db, input.corpusId, input.attribute.name) },
      { maxCandidates: settings.induction.maxCandidates, minScore: settings.induction.minScore, maxExamples: settings.induction.maxExamples },
    );
}
