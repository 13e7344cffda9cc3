/**
 * Incremental runs (the nightly job in src/jobs/nightly.ts): new documents go through the stored, selected
 * functions in the sandbox and the label model with the stored accuracies, no LLM; an attribute whose health
 * drifted is re-synthesized on a sample that includes the new documents.
 */
import type { IncrementalPipeline } from '../jobs/nightly.js';
import type { JobContext } from '../jobs/types.js';
import type { Vote } from '../weak-supervision/types.js';
import { normalizeForComparison } from '../weak-supervision/normalize.js';
import { runBatch } from './aggregation.js';
import { findSpan, upsertCells, type MaterialCell } from './materialize.js';
import { cellValues } from './list-values.js';
import { sampleDocuments } from './sampling.js';
import { directConcurrency, silverLabels } from './direct.js';
import { synthesizeFunctions } from './synthesis.js';
import { scoreCandidates } from './scoring.js';
import * as repo from './repository.js';
import type { ExtractDeps } from './extract-job.js';

interface StoredFunction {
  id: number;
  source: string;
  accuracy: number;
}

export function createIncrementalPipeline(deps: ExtractDeps): IncrementalPipeline {
  const { db, settings } = deps;
  // Raw outputs of the last apply, so write() can store values as the functions wrote them (votes are normalized).
  // apply and write of one batch run in the same checkpoint unit, so the entry is always present when needed.
  const lastRaw = new Map<string, (string[] | null)[][]>();
  const key = (attributeId: number, ids: number[]) => `${attributeId}:${ids[0]}:${ids[ids.length - 1]}:${ids.length}`;

  const selected = (attributeId: number): StoredFunction[] =>
    (
      db
        .prepare('SELECT id, source, learned_accuracy AS learned, sample_score AS score FROM functions WHERE attribute_id = ? AND selected = 1 ORDER BY id')
        .all(attributeId) as { id: number; source: string; learned: number | null; score: number | null }[]
    ).map((f) => ({ id: f.id, source: f.source, accuracy: Math.min(0.99, Math.max(0.01, f.learned ?? f.score ?? 0.7)) }));

  return {
    attributes(corpusId) {
      return db
        .prepare(
          `SELECT a.id, a.name FROM attributes a WHERE a.corpus_id = ? AND EXISTS (SELECT 1 FROM functions f WHERE f.attribute_id = a.id AND f.selected = 1) ORDER BY a.rank, a.id`,
        )
        .all(corpusId) as { id: number; name: string }[];
    },

    async apply(_corpusId, attributeId, documentIds, _ctx: JobContext): Promise<Vote[][]> {
      const fns = selected(attributeId);
      const docs = repo.loadDocuments(db, documentIds).map((d) => ({ id: d.id, text: d.text, ...(d.html ? { html: d.html } : {}) }));
      const out = await runBatch(deps.sandbox, fns.map((f) => ({ id: String(f.id), source: f.source })), docs);
      // Votes in the caller's document order (loadDocuments returns them by id).
      const byId = new Map(out.documentIds.map((id, i) => [id, out.values[i]]));
      const raw = documentIds.map((id) => byId.get(id) ?? fns.map(() => null));
      lastRaw.set(key(attributeId, documentIds), raw);
      return raw.map((row) => row.map((v) => normalizeForComparison(v)));
    },

    write(corpusId, attributeId, documentIds, votes, jobId) {
      const fns = selected(attributeId);
      const raw = lastRaw.get(key(attributeId, documentIds));
      lastRaw.delete(key(attributeId, documentIds));
      const prediction = deps.labelModel.predict({ model: deps.labelModel.name, accuracies: fns.map((f) => f.accuracy) }, votes);
      const texts = repo.loadTexts(db, documentIds);
      const cells: MaterialCell[] = documentIds.map((documentId, d) => {
        const chosen = prediction.values[d];
        const agreeing = chosen === null ? [] : votes[d].flatMap((v, f) => (v === chosen ? [f] : []));
        const value = agreeing.length ? (raw?.[d]?.[agreeing[0]] ?? [chosen!]) : null;
        const text = value ? cellValues(value).value : null;
        return {
          documentId,
          attributeId,
          value: text,
          origin: text ? 'functions' : 'none',
          confidence: chosen === null ? 0 : prediction.posteriors[d],
          functions: agreeing.map((f) => String(fns[f].id)),
          span: value ? findSpan(texts.get(documentId) ?? '', value[0]) : null,
          ...(value ? { values: cellValues(value).values } : {}),
        };
      });
      upsertCells(db, { corpusId, attributeId, jobId, cells });
    },

    async resynthesize(corpusId, attributeId, recentDocumentIds, ctx) {
      const attr = db.prepare('SELECT name, description FROM attributes WHERE id = ?').get(attributeId) as { name: string; description: string };
      const spec = { name: attr.name, description: attr.description || undefined };
      const p = settings.pipeline;
      const recent = new Set(recentDocumentIds);
      const all = repo.documentSummaries(db, corpusId);
      // Half the sample from the new documents (where the drift is), half from the rest.
      const half = Math.ceil(p.sampleSize / 2);
      const ids = [
        ...sampleDocuments(all.filter((d) => recent.has(d.id)), half, p.seed),
        ...sampleDocuments(all.filter((d) => !recent.has(d.id)), p.sampleSize - half, p.seed),
      ];
      const sample = repo.loadDocuments(db, ids);
      const call = { jobId: ctx.jobId, signal: ctx.signal };
      const labels = await silverLabels(deps.llm, spec, sample, { contextTokens: p.directContextTokens, maxTokens: p.directMaxTokens, maxTokensCeiling: p.directMaxTokensCeiling, call, concurrency: directConcurrency(settings) });
      const candidates = await synthesizeFunctions(deps.llm, spec, sample.map((doc) => ({ doc, value: labels[doc.id] ?? null })), {
        candidates: p.candidatesPerAttribute,
        documents: p.synthesisDocuments,
        temperatures: [0, 0.7],
        contextTokens: p.synthesisContextTokens,
        call,
      });
      const scored = await scoreCandidates(deps.sandbox, candidates, sample.map((d) => ({ id: d.id, text: d.text, ...(d.html ? { html: d.html } : {}) })), labels, p.topK);
      const fnIds = repo.saveFunctions(db, attributeId, scored.all, new Set(scored.kept.map((k) => k.id)), 'llm');
      // Fresh weights: fit on the sample's votes, priors from the sample scores.
      const outputs = await runBatch(deps.sandbox, scored.kept.map((k) => ({ id: k.id, source: k.source })), sample.map((d) => ({ id: d.id, text: d.text, ...(d.html ? { html: d.html } : {}) })));
      if (scored.kept.length > 0) {
        const weights = deps.labelModel.fit({ votes: outputs.values.map((row) => row.map((v) => normalizeForComparison(v))), priors: scored.kept.map((k) => k.score) });
        repo.saveAccuracies(db, scored.kept.map((k) => fnIds.get(k.id)!), weights.accuracies);
      }
    },
  };
}
