/**
 * The "extract" job (EVAPORATE-CODE+): sample -> schema -> per attribute silver labels, synthesis, scoring ->
 * corpus batches in the sandbox -> label model -> materialized table. Every unit of work goes through
 * ctx.checkpoint, so a killed job resumes where it stopped and a re-run reuses the LLM cache.
 */
import type { Db } from '../store/database.js';
import type { Settings } from '../config.js';
import type { CallContext, CompletionRequest, CompletionResult, LlmProvider, ModelRole } from '../llm/types.js';
import { requireModels } from '../llm/index.js';
import type { Sandbox, SandboxDocument } from '../sandbox/types.js';
import type { LabelModel } from '../weak-supervision/types.js';
import type { JobContext, JobHandler } from '../jobs/types.js';
import { EvaporateError } from '../errors.js';
import { sampleDocuments } from './sampling.js';
import { discoverAttributes, isPlausible, mergeSynonyms, rankSchema, canonicalName } from './schema.js';
import { directConcurrency, extractDirect, mapLimit, silverLabels } from './direct.js';
import { synthesizeFunctions } from './synthesis.js';
import { scoreCandidates } from './scoring.js';
import type { LabelDispute } from './silver-quality.js';
import { cellValues, finalizeCells, isListShaped, locateSpans } from './list-values.js';
import { aggregate, runBatch, type BatchOutputs } from './aggregation.js';
import { columnsFor, inferType, materializeTable, resultTableName, type MaterialCell } from './materialize.js';
import { passages } from './retrieval.js';
import * as repo from './repository.js';
import { givenLabels, labelledByAttribute } from '../store/labels.js';
import { countHealth, recordHealth, toHealth, type AttributeHealth } from '../jobs/health.js';
import { normalizeForComparison } from '../weak-supervision/normalize.js';
import type { AttributeSpec, AttributeType, Candidate, PipelineDocument, ScoredCandidate, SilverLabels } from './types.js';

export interface ExtractParams {
  corpusId: number;
  mode: 'open' | 'closed';
  attributes?: AttributeSpec[];
  sampleSize?: number;
  candidates?: number;
  topK?: number;
  maxAttributes?: number;
  seed?: number;
  /** Direct extraction on documents where every function abstained (costs LLM calls per such document). */
  fallbackDirect?: boolean;
}

export interface ExtractDeps {
  db: Db;
  llm: LlmProvider;
  sandbox: Sandbox;
  labelModel: LabelModel;
  settings: Settings;
  /** Extra zero-token candidates (wrapper induction), scored alongside the LLM's. */
  extraCandidates?: (input: { corpusId: number; attribute: AttributeSpec; sample: PipelineDocument[]; silver: SilverLabels }) => Promise<Candidate[]>;
}

export interface AttributeSummary {
  name: string;
  column: string;
  type: AttributeType;
  candidates: number;
  kept: number;
  bestSampleScore: number;
  filled: number;
  /** Sample labels the candidates contradicted or split over (see silver-quality.ts); absent when none. */
  labelDisputes?: LabelDispute[];
}

export interface ExtractResult {
  corpusId: number;
  table: string;
  provenanceTable: string;
  rows: number;
  attributes: AttributeSummary[];
  dropped: string[];
  /** Open mode: attributes found in enough sample documents that the attribute cap (maxAttributes) left out. */
  cut?: string[];
  llm: { calls: number; cachedCalls: number; promptTokens: number; completionTokens: number };
  /** Prompt tokens direct extraction of every document and attribute would send, estimated from the sample's real prompts. */
  directTokensEstimate: number;
  functionEvaluations: number;
  stageMs: Record<string, number>;
}

/** Counts what this run of the job asked of the model (the ledger in src/llm is the durable account). */
function metered(llm: LlmProvider) {
  const m = { calls: 0, cachedCalls: 0, promptTokens: 0, completionTokens: 0, directPromptTokens: 0, directCalls: 0 };
  const provider: LlmProvider = {
    name: llm.name,
    async complete(request: CompletionRequest, context?: CallContext): Promise<CompletionResult> {
      const r = await llm.complete(request, context);
      m.calls++;
      if (r.cached) m.cachedCalls++;
      else {
        m.promptTokens += r.usage.promptTokens;
        m.completionTokens += r.usage.completionTokens;
      }
      if (request.role === 'extraction') {
        m.directCalls++;
        m.directPromptTokens += r.usage.promptTokens;
      }
      return r;
    },
  };
  return { provider, m };
}

const sandboxDoc = (d: PipelineDocument): SandboxDocument => ({ id: d.id, text: d.text, ...(d.html ? { html: d.html } : {}) });

/** The passages of a sample document that look most like a record: many "Label: value" lines. */
function schemaContext(doc: PipelineDocument, tokens: number): string {
  const spans = passages(doc.text, 1000);
  const scored = spans.map((s, i) => {
    const t = doc.text.slice(s.start, s.end);
    return { i, score: (t.match(/^[^\n:]{2,40}:\s*\S/gm) ?? []).length + (t.match(/\b(by|price|date|isbn|publisher|author|name)\b/gi) ?? []).length * 0.2 };
  });
  const picked = scored.sort((a, b) => b.score - a.score || a.i - b.i).slice(0, Math.max(1, Math.floor((tokens * 4) / 1000))).map((s) => s.i).sort((a, b) => a - b);
  return picked.map((i) => doc.text.slice(spans[i].start, spans[i].end).trim()).join('\n...\n');
}

export function createExtractHandler(deps: ExtractDeps): JobHandler<ExtractParams, ExtractResult> {
  return (params, ctx) => runExtraction(deps, params, ctx);
}

export async function runExtraction(deps: ExtractDeps, params: ExtractParams, ctx: JobContext): Promise<ExtractResult> {
  const { db, settings } = deps;
  const p = settings.pipeline;
  const sampleSize = params.sampleSize ?? p.sampleSize;
  const topK = params.topK ?? p.topK;
  const seed = params.seed ?? p.seed;
  const corpus = repo.corpusRow(db, params.corpusId);
  if (params.mode === 'closed' && (!params.attributes || params.attributes.length === 0))
    throw new EvaporateError('attributes_required', 'A closed extraction needs the list of attributes to extract.', 400);
  // The models the job needs, checked before any work. An attribute with at least two labelled documents can
  // be learned by wrapper induction alone, so a closed extraction of such attributes needs no model at all;
  // where a model is there, it still adds silver labels and written functions.
  const labelled = labelledByAttribute(db, corpus.id);
  const inducible = (name: string) => deps.extraCandidates !== undefined && (labelled.get(name)?.withValue ?? 0) >= 2;
  const needed = new Set<ModelRole>(params.mode === 'open' ? ['schema', 'extraction', 'synthesis'] : []);
  if (params.mode === 'closed' && params.attributes!.some((a) => !inducible(a.name.trim()))) needed.add('synthesis').add('extraction');
  if (params.fallbackDirect) needed.add('extraction');
  requireModels(deps.llm, [...needed], params.mode === 'closed' ? 'or label at least two documents of each attribute' : '');
  const hasModel = (role: ModelRole) => (deps.llm.missingFor?.(role) ?? []).length === 0;
  const { provider: llm, m } = metered(deps.llm);
  const call: CallContext = { jobId: ctx.jobId, signal: ctx.signal };
  const stageMs: Record<string, number> = {};
  const timed = async <T>(stage: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      stageMs[stage] = (stageMs[stage] ?? 0) + performance.now() - t0;
    }
  };

  // The job's documents are fixed at its first attempt: one that arrives later (even between a crash and the
  // resume) is left whole for the next run rather than half-processed by this one.
  const current = repo.documentSummaries(db, corpus.id);
  if (current.length === 0) throw new EvaporateError('corpus_empty', `Corpus "${corpus.name}" has no readable documents to extract from.`, 409);
  const jobDocIds = await ctx.checkpoint('documents', async () => current.map((d) => d.id));
  const jobDocs = new Set(jobDocIds);
  const all = current.filter((d) => jobDocs.has(d.id));
  // Labelled documents of the job join the sample (their labels are the best silver labels there are), up to
  // the number of examples induction takes.
  const labelledIds = [...new Set((params.attributes ?? []).flatMap((a) => labelled.get(a.name.trim())?.documents ?? []))]
    .filter((id) => jobDocs.has(id))
    .slice(0, settings.induction.maxExamples);
  const sampleIds = await timed('sample', () =>
    ctx.checkpoint('sample', async () => [...new Set([...sampleDocuments(all, sampleSize, seed), ...labelledIds])]),
  );
  const sample = repo.loadDocuments(db, sampleIds);
  ctx.progress('schema', 0, 1);

  // Schema: the user's list, or what the model sees in the sample (ranked, synonyms merged).
  const schema = await timed('schema', () =>
    ctx.checkpoint('schema:ranked', async (): Promise<{ specs: AttributeSpec[]; cut: string[] }> => {
      if (params.mode === 'closed') {
        const seen = new Set<string>();
        const specs = params.attributes!.filter((a) => {
          const key = a.name.trim();
          if (!key || seen.has(key)) return false;
          seen.add(key);
          return true;
        });
        return { specs, cut: [] };
      }
      const found = await discoverAttributes(llm, sample.map((d) => ({ docId: d.id, text: schemaContext(d, p.schemaContextTokens) })), call);
      const merged = await mergeSynonyms(llm, found, call);
      const minSupport = Math.max(1, Math.ceil(sample.length * p.minAttributeSupport));
      const ranked = rankSchema(merged, params.maxAttributes ?? p.maxAttributes, minSupport);
      return { specs: ranked.kept.map((a) => ({ name: a.name })), cut: ranked.cut.map((a) => a.name) };
    }),
  );
  let specs = schema.specs;
  ctx.progress('schema', 1, 1);

  // Silver labels first: the open-mode plausibility check reads them.
  const silver = new Map<string, SilverLabels>();
  const trusted = new Map<string, Set<number>>(); // sample documents whose label a person gave, per attribute
  const dropped: string[] = [];
  for (const [i, spec] of specs.entries()) {
    ctx.progress('silver labels', i, specs.length);
    // Values a person labelled (POST /corpora/:id/labels) stand in for direct extraction on those documents.
    const given = givenLabels(db, corpus.id, spec.name, sample.map((d) => d.id));
    const unlabelled = sample.filter((d) => !given.has(d.id));
    // Without an extraction model (a closed extraction learned from labels), the labelled documents are the sample.
    const labels: SilverLabels = hasModel('extraction')
      ? await timed('direct', () =>
          ctx.checkpoint(`attribute:${spec.name}:silver`, () => silverLabels(llm, spec, unlabelled, { contextTokens: p.directContextTokens, maxTokens: p.directMaxTokens, maxTokensCeiling: p.directMaxTokensCeiling, call, concurrency: directConcurrency(settings) })),
        )
      : {};
    for (const [id, values] of given) labels[id] = values.length ? values : null;
    silver.set(spec.name, labels);
    trusted.set(spec.name, new Set(given.keys()));
    if (params.mode === 'open') {
      const values = Object.values(labels).flatMap((v) => v ?? []);
      const ok = await timed('schema', () => ctx.checkpoint(`attribute:${spec.name}:plausible`, () => isPlausible(llm, spec.name, values, call)));
      if (!ok) dropped.push(spec.name);
    }
  }
  specs = specs.filter((s) => !dropped.includes(s.name));
  const attributeIds = repo.upsertAttributes(
    db,
    corpus.id,
    specs.map((s) => ({ ...s, name: params.mode === 'open' ? canonicalName(s.name) : s.name, origin: params.mode === 'open' ? 'discovered' : 'user' })),
  );

  // Per attribute: synthesis and scoring on the sample.
  const kept = new Map<string, ScoredCandidate[]>();
  const keptIds = new Map<string, number[]>();
  const summaries = new Map<string, Omit<AttributeSummary, 'column' | 'type' | 'filled'>>();
  for (const [i, spec] of specs.entries()) {
    ctx.progress('synthesis', i, specs.length);
    const labels = silver.get(spec.name)!;
    // Functions are written from, and scored on, the sample documents that have a label for this attribute.
    const labelledSample = sample.filter((d) => d.id in labels);
    const candidates = await timed('synthesis', () =>
      ctx.checkpoint(`attribute:${spec.name}:synthesis`, async () => {
        const fromLlm = hasModel('synthesis')
          ? await synthesizeFunctions(llm, spec, labelledSample.map((doc) => ({ doc, value: labels[doc.id] ?? null, given: trusted.get(spec.name)!.has(doc.id) })), {
              candidates: params.candidates ?? p.candidatesPerAttribute,
              documents: p.synthesisDocuments,
              temperatures: [0, 0.7],
              contextTokens: p.synthesisContextTokens,
              call,
            })
          : [];
        const extra = deps.extraCandidates ? await deps.extraCandidates({ corpusId: corpus.id, attribute: spec, sample, silver: labels }) : [];
        const ids = new Set(fromLlm.map((c) => c.id));
        return [...fromLlm, ...extra.filter((c) => !ids.has(c.id))];
      }),
    );
    ctx.progress('scoring', i, specs.length);
    const scored = await timed('scoring', () =>
      ctx.checkpoint(`attribute:${spec.name}:scoring`, () => scoreCandidates(deps.sandbox, candidates, labelledSample.map(sandboxDoc), labels, topK, { trusted: trusted.get(spec.name) })),
    );
    const fnIds = repo.saveFunctions(db, attributeIds[i], scored.all, new Set(scored.kept.map((k) => k.id)), 'llm');
    kept.set(spec.name, scored.kept);
    keptIds.set(spec.name, scored.kept.map((k) => fnIds.get(k.id)!));
    summaries.set(spec.name, { name: spec.name, candidates: candidates.length, kept: scored.kept.length, bestSampleScore: scored.kept[0]?.score ?? 0, ...(scored.disputes?.length ? { labelDisputes: scored.disputes } : {}) });
  }

  // The corpus pass: plain code in the sandbox, one checkpoint per batch of documents.
  // Batches over the checkpointed list, so their boundaries are the same on every attempt.
  const docIds = jobDocIds;
  const batchSize = p.batchSize;
  const batches: Record<string, BatchOutputs>[] = [];
  let functionEvaluations = 0;
  // Failures per function over the whole pass (the sandbox disables a function past its limit for the job);
  // each checkpointed batch records the counts after it, so a resumed job picks them up where it stopped.
  const failures = new Map(specs.map((s) => [s.name, new Map<string, number>()]));
  for (let b = 0; b * batchSize < docIds.length; b++) {
    ctx.progress('aggregation', b * batchSize, docIds.length);
    const ids = docIds.slice(b * batchSize, (b + 1) * batchSize);
    const out = await timed('corpus', () =>
      ctx.checkpoint(`batch:${b}`, async () => {
        const docs = repo.loadDocuments(db, ids).map(sandboxDoc);
        const result: Record<string, BatchOutputs> = {};
        for (const spec of specs)
          result[spec.name] = await runBatch(deps.sandbox, kept.get(spec.name)!.map((k) => ({ id: k.id, source: k.source })), docs, failures.get(spec.name));
        return result;
      }),
    );
    for (const spec of specs) {
      functionEvaluations += kept.get(spec.name)!.length * ids.length;
      failures.set(spec.name, new Map(Object.entries(out[spec.name].failures ?? {})));
    }
    batches.push(out);
  }
  ctx.progress('aggregation', docIds.length, docIds.length);

  // Label model per attribute, then the optional direct fallback where every function abstained.
  const cells: MaterialCell[] = [];
  const types: AttributeType[] = [];
  const lists: boolean[] = [];
  const filled = new Map<string, number>();
  const health = new Map<number, AttributeHealth>();
  await timed('label model', async () => {
    for (const [i, spec] of specs.entries()) {
      const fns = kept.get(spec.name)!;
      const { cells: decided, accuracies } = aggregate(deps.labelModel, batches.map((b) => b[spec.name]), fns.map((f) => f.score), { listShaped: isListShaped(silver.get(spec.name)!) });
      // The full run's health (share of documents where the kept functions abstain or disagree) is the
      // baseline that nightly runs compare against to detect drift.
      const votes = batches.flatMap((b) => b[spec.name].values.map((row) => row.map((v) => normalizeForComparison(v))));
      health.set(attributeIds[i], toHealth(countHealth(votes, deps.settings.jobs.agreementShare)));
      repo.saveAccuracies(db, keptIds.get(spec.name)!, accuracies);
      const attrCells: MaterialCell[] = decided.map((c) => ({
        documentId: c.documentId,
        attributeId: attributeIds[i],
        ...cellValues(c.value),
        origin: c.value ? 'functions' : 'none',
        confidence: c.confidence,
        functions: c.agreeing.map((f) => String(keptIds.get(spec.name)![f])),
        span: null,
      }));
      if (params.fallbackDirect) {
        const missing = attrCells.filter((c) => c.value === null).slice(0, p.fallbackMaxDocuments);
        const direct = await ctx.checkpoint(`attribute:${spec.name}:fallback`, async () => {
          const texts = repo.loadTexts(db, missing.map((c) => c.documentId));
          const out: Record<number, string[] | null> = {};
          await mapLimit(missing, directConcurrency(settings), async (c) => {
            out[c.documentId] = await extractDirect(llm, spec, { text: texts.get(c.documentId) ?? '' }, { contextTokens: p.directContextTokens, maxTokens: p.directMaxTokens, maxTokensCeiling: p.directMaxTokensCeiling, call });
          });
          return out;
        });
        for (const c of missing) {
          const v = direct[c.documentId];
          if (v) Object.assign(c, { ...cellValues(v), origin: 'direct', confidence: 0.5 });
        }
      }
      lists.push(finalizeCells(attrCells, silver.get(spec.name)!));
      types.push(lists[i] ? 'text' : (spec.type ?? inferType(attrCells.map((c) => c.value))));
      filled.set(spec.name, attrCells.filter((c) => c.value !== null).length);
      cells.push(...attrCells);
    }
  });

  // Spans: where each value stands in documents.text, read in batches so memory stays flat.
  ctx.progress('materialize', 0, 1);
  const table = resultTableName(corpus.name, corpus.id);
  const columns = columnsFor(specs.map((s, i) => ({ id: attributeIds[i], name: s.name, type: types[i] }))).map((c, i) => (lists[i] ? { ...c, list: true } : c));
  await timed('materialize', () =>
    ctx.checkpoint('materialize', async () => {
      const byDoc = new Map<number, MaterialCell[]>();
      for (const c of cells) if (c.value !== null) (byDoc.get(c.documentId) ?? byDoc.set(c.documentId, []).get(c.documentId)!).push(c);
      for (let b = 0; b * batchSize < docIds.length; b++) {
        const texts = repo.loadTexts(db, docIds.slice(b * batchSize, (b + 1) * batchSize));
        for (const [id, text] of texts) for (const c of byDoc.get(id) ?? []) locateSpans(text, c);
      }
      columns.forEach((c) => repo.setAttributeType(db, c.attributeId, c.type));
      materializeTable(db, { corpusId: corpus.id, table, jobId: ctx.jobId, columns, documentIds: docIds, cells });
      for (const [attributeId, h] of health) recordHealth(db, { jobId: ctx.jobId, corpusId: corpus.id, attributeId, runKind: 'full', ...h });
      return { rows: docIds.length };
    }),
  );
  ctx.progress('done', 1, 1);

  const meanDirectPrompt = m.directCalls ? m.directPromptTokens / m.directCalls : 0;
  return {
    corpusId: corpus.id,
    table,
    provenanceTable: `${table}__provenance`,
    rows: docIds.length,
    attributes: specs.map((s, i) => ({ ...summaries.get(s.name)!, column: columns[i].column, type: types[i], filled: filled.get(s.name) ?? 0 })),
    dropped,
    cut: schema.cut,
    llm: { calls: m.calls, cachedCalls: m.cachedCalls, promptTokens: m.promptTokens, completionTokens: m.completionTokens },
    directTokensEstimate: Math.round(meanDirectPrompt * docIds.length * specs.length),
    functionEvaluations,
    stageMs,
  };
}

/** A JobContext for running the pipeline outside the job runner (CLI one-shot, tests): memo in a Map. */
export function memoryJobContext(options: { jobId?: number; onProgress?: (step: string, done: number, total: number) => void } = {}): JobContext & { memo: Map<string, string> } {
  const memo = new Map<string, string>();
  const controller = new AbortController();
  return {
    jobId: options.jobId ?? 0,
    signal: controller.signal,
    memo,
    progress: options.onProgress ?? (() => {}),
    async checkpoint<T>(key: string, fn: () => Promise<T>, opts?: { commit?: (r: T) => void }): Promise<T> {
      if (memo.has(key)) return JSON.parse(memo.get(key)!) as T;
      const r = await fn();
      opts?.commit?.(r);
      const json = JSON.stringify(r ?? null);
      memo.set(key, json);
      return JSON.parse(json) as T;
    },
  };
}
