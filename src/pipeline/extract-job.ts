/**
 * The "extract" job (EVAPORATE-CODE+): sample -> schema -> per attribute silver labels, synthesis, scoring ->
 * corpus batches in the sandbox -> label model -> materialized table. Every unit of work goes through
 * ctx.checkpoint, so a killed job resumes where it stopped and a re-run reuses the LLM cache.
 */
import { getMaxListeners, setMaxListeners } from 'node:events';
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
import { aggregate, runAttributes, type BatchOutputs } from './aggregation.js';
import { columnsFor, inferType, materializeTable, resultTableName, type MaterialCell } from './materialize.js';
import { ELISION, passages } from './retrieval.js';
import { shardedCorpusPass, type ShardRunner } from './corpus-shards.js';
import { checkBatchOutputs, cutBatches, sliceBatches } from './batches.js';
import * as repo from './repository.js';
import { givenLabels, labelledByAttribute } from '../store/labels.js';
import { countHealth, recordHealth, toHealth, type AttributeHealth } from '../jobs/health.js';
import { normalizeForComparison } from '../weak-supervision/normalize.js';
import { withCrashGuard } from './crash-markers.js';
import type { AttributeSpec, AttributeType, Candidate, PipelineDocument, ScoredCandidate, SilverLabels } from './types.js';
import { emptyAttributeWarnings, type JobWarning } from './warnings.js';

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
  /** Where the corpus pass runs when not in this process (worker processes over Redis: src/shards). */
  shards?: ShardRunner;
  /** Serves the direct-extraction fallback when not `llm` (the workers' model over Redis: src/shards). */
  fallbackLlm?: LlmProvider;
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
  /** Attributes that ended empty, each with why and what to do (src/pipeline/warnings.ts). */
  warnings: JobWarning[];
}

/** Counts what this run of the job asked of the model (the ledger in src/llm is the durable account). */
type Meter = { calls: number; cachedCalls: number; promptTokens: number; completionTokens: number; directPromptTokens: number; directCalls: number };

function metered(llm: LlmProvider, m: Meter = { calls: 0, cachedCalls: 0, promptTokens: 0, completionTokens: 0, directPromptTokens: 0, directCalls: 0 }) {
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
  return picked.map((i) => doc.text.slice(spans[i].start, spans[i].end).trim()).join(ELISION);
}

export function createExtractHandler(deps: ExtractDeps): JobHandler<ExtractParams, ExtractResult> {
  return (params, ctx) => runExtraction(deps, params, ctx);
}

/**
 * The job as a list of named steps. Each step takes the run's environment (deps, job context, metered model)
 * and plain data from the steps before it, and returns plain data; checkpoint keys are the steps' units of work.
 */
export async function runExtraction(deps: ExtractDeps, params: ExtractParams, ctx: JobContext): Promise<ExtractResult> {
  const run = startRun(deps, params, ctx);
  const documents = await fixDocuments(run);
  const sample = await pickSample(run, documents);
  const { specs: proposed, cut } = await findSchema(run, sample);
  const { specs, silver, trusted, dropped } = await labelSample(run, proposed, sample);
  const attributeIds = saveAttributes(run, specs);
  const learned = await learnFunctions(run, specs, attributeIds, sample, silver, trusted);
  const pass = await corpusPass(run, specs, learned, documents.batches);
  const decided = await decideCells(run, specs, attributeIds, learned, pass, silver);
  const columns = await materialize(run, specs, attributeIds, decided, documents);
  return summarize(run, { specs, columns, learned, decided, dropped, cut, pass, rows: documents.ids.length });
}

/** What every step of one run shares: its inputs, the metered model, the call context and the stage timer. */
interface Run {
  deps: ExtractDeps;
  params: ExtractParams;
  ctx: JobContext;
  corpus: ReturnType<typeof repo.corpusRow>;
  labelled: ReturnType<typeof labelledByAttribute>;
  llm: LlmProvider;
  /** Where the direct-extraction fallback's calls go (counted in the same meter as `llm`). */
  fallbackLlm: LlmProvider;
  meter: Meter;
  call: CallContext;
  hasModel(role: ModelRole): boolean;
  stageMs: Record<string, number>;
  timed<T>(stage: string, fn: () => Promise<T>): Promise<T>;
}

/** Checks the request and the models the job needs before any work. */
function startRun(deps: ExtractDeps, params: ExtractParams, ctx: JobContext): Run {
  // A unit whose functions killed the process is rerun carefully, never blindly (see crash-markers.ts).
  ({ ctx, deps } = withCrashGuard(deps.db, ctx, deps, { maxCrashes: deps.settings.jobs?.unitMaxCrashes ?? 3 }));
  const { db } = deps;
  const corpus = repo.corpusRow(db, params.corpusId);
  if (params.mode === 'closed' && (!params.attributes || params.attributes.length === 0))
    throw new EvaporateError('attributes_required', 'A closed extraction needs the list of attributes to extract.', 400);
  // An attribute with at least two labelled documents can be learned by wrapper induction alone, so a closed
  // extraction of such attributes needs no model at all; where a model is there, it still adds silver labels
  // and written functions.
  const labelled = labelledByAttribute(db, corpus.id);
  const inducible = (name: string) => deps.extraCandidates !== undefined && (labelled.get(name)?.withValue ?? 0) >= 2;
  const needed = new Set<ModelRole>(params.mode === 'open' ? ['schema', 'extraction', 'synthesis'] : []);
  if (params.mode === 'closed' && params.attributes!.some((a) => !inducible(a.name.trim()))) needed.add('synthesis').add('extraction');
  requireModels(deps.llm, [...needed], params.mode === 'closed' ? 'or label at least two documents of each attribute' : '');
  if (params.fallbackDirect) requireModels(deps.fallbackLlm ?? deps.llm, ['extraction']);
  const { provider: llm, m } = metered(deps.llm);
  const fallbackLlm = deps.fallbackLlm ? metered(deps.fallbackLlm, m).provider : llm;
  const stageMs: Record<string, number> = {};
  return {
    deps,
    params,
    ctx,
    corpus,
    labelled,
    llm,
    fallbackLlm,
    meter: m,
    call: { jobId: ctx.jobId, signal: ctx.signal },
    hasModel: (role) => (deps.llm.missingFor?.(role) ?? []).length === 0,
    stageMs,
    async timed(stage, fn) {
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        stageMs[stage] = (stageMs[stage] ?? 0) + performance.now() - t0;
      }
    },
  };
}

interface JobDocuments {
  ids: number[];
  /** The ids cut into the corpus pass's batches (batch n is checkpoint `batch:<n>`). */
  batches: number[][];
  summaries: ReturnType<typeof repo.documentSummaries>;
}

/**
 * The job's documents, and how they are cut into batches, are fixed at its first attempt: a document that
 * arrives later (even between a crash and the resume) is left whole for the next run rather than half-processed
 * by this one, and a resume under other batch settings still finds each `batch:<n>` with its own documents.
 */
async function fixDocuments(run: Run): Promise<JobDocuments> {
  const { db, settings } = run.deps;
  const current = repo.documentSummaries(db, run.corpus.id);
  if (current.length === 0) throw new EvaporateError('corpus_empty', `Corpus "${run.corpus.name}" has no readable documents to extract from.`, 409);
  const ids = await run.ctx.checkpoint('documents', async () => current.map((d) => d.id));
  const cut = await run.ctx.checkpoint('batches', async () => {
    const bytes = repo.documentBytes(db, run.corpus.id);
    return cutBatches(ids.map((id) => bytes.get(id) ?? 0), { documents: settings.pipeline.batchSize, bytes: settings.pipeline.batchBytes });
  });
  const inJob = new Set(ids);
  return { ids, batches: sliceBatches(ids, cut), summaries: current.filter((d) => inJob.has(d.id)) };
}

/**
 * The sample the model reads. Labelled documents of the job join it (their labels are the best silver labels
 * there are), up to the number of examples induction takes.
 */
async function pickSample(run: Run, documents: JobDocuments): Promise<PipelineDocument[]> {
  const { deps, params, ctx } = run;
  const p = deps.settings.pipeline;
  const inJob = new Set(documents.ids);
  const labelledIds = [...new Set((params.attributes ?? []).flatMap((a) => run.labelled.get(a.name.trim())?.documents ?? []))]
    .filter((id) => inJob.has(id))
    .slice(0, deps.settings.induction.maxExamples);
  const sampleIds = await run.timed('sample', () =>
    ctx.checkpoint('sample', async () => [
      ...new Set([...sampleDocuments(documents.summaries, params.sampleSize ?? p.sampleSize, params.seed ?? p.seed), ...labelledIds]),
    ]),
  );
  return repo.loadDocuments(deps.db, sampleIds);
}

/** Schema: the user's list, or what the model sees in the sample (ranked, synonyms merged); `cut` is what the attribute cap left out. */
async function findSchema(run: Run, sample: PipelineDocument[]): Promise<{ specs: AttributeSpec[]; cut: string[] }> {
  const { params, ctx, llm, call } = run;
  const p = run.deps.settings.pipeline;
  ctx.progress('schema', 0, 1);
  const schema = await run.timed('schema', () =>
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
  ctx.progress('schema', 1, 1);
  return schema;
}

/** Silver labels on the sample, per attribute; in open mode, attributes whose values look implausible are dropped. */
async function labelSample(
  run: Run,
  proposed: AttributeSpec[],
  sample: PipelineDocument[],
): Promise<{ specs: AttributeSpec[]; silver: Map<string, SilverLabels>; trusted: Map<string, Set<number>>; dropped: string[] }> {
  const { deps, params, ctx, llm, call } = run;
  const p = deps.settings.pipeline;
  const silver = new Map<string, SilverLabels>();
  const trusted = new Map<string, Set<number>>(); // sample documents whose label a person gave, per attribute
  const dropped: string[] = [];
  for (const [i, spec] of proposed.entries()) {
    ctx.progress('silver labels', i, proposed.length);
    // Values a person labelled (POST /corpora/:id/labels) stand in for direct extraction on those documents.
    const given = givenLabels(deps.db, run.corpus.id, spec.name, sample.map((d) => d.id));
    const unlabelled = sample.filter((d) => !given.has(d.id));
    // Without an extraction model (a closed extraction learned from labels), the labelled documents are the sample.
    const labels: SilverLabels = run.hasModel('extraction')
      ? await run.timed('direct', () =>
          ctx.checkpoint(`attribute:${spec.name}:silver`, () =>
            silverLabels(llm, spec, unlabelled, {
              contextTokens: p.directContextTokens,
              maxTokens: p.directMaxTokens,
              maxTokensCeiling: p.directMaxTokensCeiling,
              call,
              concurrency: directConcurrency(deps.settings),
            }),
          ),
        )
      : {};
    for (const [id, values] of given) labels[id] = values.length ? values : null;
    silver.set(spec.name, labels);
    trusted.set(spec.name, new Set(given.keys()));
    if (params.mode === 'open') {
      const values = Object.values(labels).flatMap((v) => v ?? []);
      const ok = await run.timed('schema', () => ctx.checkpoint(`attribute:${spec.name}:plausible`, () => isPlausible(llm, spec.name, values, call)));
      if (!ok) dropped.push(spec.name);
    }
  }
  return { specs: proposed.filter((s) => !dropped.includes(s.name)), silver, trusted, dropped };
}

function saveAttributes(run: Run, specs: AttributeSpec[]): number[] {
  const open = run.params.mode === 'open';
  return repo.upsertAttributes(
    run.deps.db,
    run.corpus.id,
    specs.map((s) => ({ ...s, name: open ? canonicalName(s.name) : s.name, origin: open ? 'discovered' : 'user' })),
  );
}

/** Per attribute: the kept functions (scored on the sample), their ids in the functions table, and the summary. */
interface Learned {
  kept: Map<string, ScoredCandidate[]>;
  keptIds: Map<string, number[]>;
  summaries: Map<string, Omit<AttributeSummary, 'column' | 'type' | 'filled'>>;
}

/** Per attribute: synthesis and scoring on the sample. */
async function learnFunctions(
  run: Run,
  specs: AttributeSpec[],
  attributeIds: number[],
  sample: PipelineDocument[],
  silver: Map<string, SilverLabels>,
  trusted: Map<string, Set<number>>,
): Promise<Learned> {
  const { deps, params, ctx, llm, call } = run;
  const p = deps.settings.pipeline;
  const topK = params.topK ?? p.topK;
  const learned: Learned = { kept: new Map(), keptIds: new Map(), summaries: new Map() };
  for (const [i, spec] of specs.entries()) {
    ctx.progress('synthesis', i, specs.length);
    const labels = silver.get(spec.name)!;
    // Functions are written from, and scored on, the sample documents that have a label for this attribute.
    const labelledSample = sample.filter((d) => d.id in labels);
    const candidates = await run.timed('synthesis', () =>
      ctx.checkpoint(`attribute:${spec.name}:synthesis`, async () => {
        const fromLlm = run.hasModel('synthesis')
          ? await synthesizeFunctions(llm, spec, labelledSample.map((doc) => ({ doc, value: labels[doc.id] ?? null, given: trusted.get(spec.name)!.has(doc.id) })), {
              candidates: params.candidates ?? p.candidatesPerAttribute,
              documents: p.synthesisDocuments,
              temperatures: [0, 0.7],
              contextTokens: p.synthesisContextTokens,
              call,
            })
          : [];
        const extra = deps.extraCandidates ? await deps.extraCandidates({ corpusId: run.corpus.id, attribute: spec, sample, silver: labels }) : [];
        const ids = new Set(fromLlm.map((c) => c.id));
        return [...fromLlm, ...extra.filter((c) => !ids.has(c.id))];
      }),
    );
    ctx.progress('scoring', i, specs.length);
    const scored = await run.timed('scoring', () =>
      ctx.checkpoint(`attribute:${spec.name}:scoring`, () => scoreCandidates(deps.sandbox, candidates, labelledSample.map(sandboxDoc), labels, topK, { trusted: trusted.get(spec.name) })),
    );
    const fnIds = repo.saveFunctions(deps.db, attributeIds[i], scored.all, new Set(scored.kept.map((k) => k.id)), 'llm');
    learned.kept.set(spec.name, scored.kept);
    learned.keptIds.set(spec.name, scored.kept.map((k) => fnIds.get(k.id)!));
    learned.summaries.set(spec.name, { name: spec.name, candidates: candidates.length, kept: scored.kept.length, bestSampleScore: scored.kept[0]?.score ?? 0, ...(scored.disputes?.length ? { labelDisputes: scored.disputes } : {}) });
  }
  return learned;
}

/** The corpus pass's outputs: per batch, per attribute, the kept functions' values. */
interface CorpusPass {
  batches: Record<string, BatchOutputs>[];
  functionEvaluations: number;
}

/**
 * The corpus pass: plain code in the sandbox, one checkpoint per batch of documents. The batches are the job's
 * checkpointed cut, so their boundaries are the same on every attempt and in process or on workers.
 */
async function corpusPass(run: Run, specs: AttributeSpec[], learned: Learned, cut: number[][]): Promise<CorpusPass> {
  const { deps, ctx } = run;
  const total = cut.reduce((n, b) => n + b.length, 0);
  const functionsOf = new Map(specs.map((s) => [s.name, learned.kept.get(s.name)!.map((k) => ({ id: k.id, source: k.source }))]));
  const functionEvaluations = [...functionsOf.values()].reduce((n, fns) => n + fns.length, 0) * total;
  const attributes = specs.map((s) => ({ name: s.name, functions: functionsOf.get(s.name)! }));
  if (deps.shards) {
    const load = (ids: number[]) => repo.loadDocuments(deps.db, ids).map(sandboxDoc);
    const batches = await run.timed('corpus', () => shardedCorpusPass(deps.shards!, ctx, { attributes, batches: cut, load }));
    return { batches, functionEvaluations };
  }
  const batches: Record<string, BatchOutputs>[] = [];
  // Failures per function over the whole pass (the sandbox disables a function past its limit for the job);
  // each checkpointed batch records the counts after it, so a resumed job picks them up where it stopped.
  const failures = new Map(specs.map((s) => [s.name, new Map<string, number>()]));
  let done = 0;
  for (const [b, ids] of cut.entries()) {
    ctx.progress('aggregation', done, total);
    const out = await run.timed('corpus', () =>
      ctx.checkpoint(`batch:${b}`, async () => {
        const docs = repo.loadDocuments(deps.db, ids).map(sandboxDoc);
        return runAttributes(deps.sandbox, attributes, docs, failures);
      }),
    );
    checkBatchOutputs(b, ids, out);
    for (const spec of specs) failures.set(spec.name, new Map(Object.entries(out[spec.name].failures ?? {})));
    batches.push(out);
    done += ids.length;
  }
  ctx.progress('aggregation', total, total);
  return { batches, functionEvaluations };
}

/** Every attribute's cells, their column types, which are lists, fill counts and health (the baseline nightly runs compare against). */
interface Decided {
  cells: MaterialCell[];
  types: AttributeType[];
  lists: boolean[];
  filled: Map<string, number>;
  health: Map<number, AttributeHealth>;
}

/** Label model per attribute, then the optional direct fallback where every function abstained. */
async function decideCells(
  run: Run,
  specs: AttributeSpec[],
  attributeIds: number[],
  learned: Learned,
  pass: CorpusPass,
  silver: Map<string, SilverLabels>,
): Promise<Decided> {
  const { deps, params } = run;
  const decided: Decided = { cells: [], types: [], lists: [], filled: new Map(), health: new Map() };
  await run.timed('label model', async () => {
    for (const [i, spec] of specs.entries()) {
      const fns = learned.kept.get(spec.name)!;
      const keptIds = learned.keptIds.get(spec.name)!;
      const { cells: chosen, accuracies } = aggregate(deps.labelModel, pass.batches.map((b) => b[spec.name]), fns.map((f) => f.score), {
        listShaped: isListShaped(silver.get(spec.name)!),
      });
      // The full run's health (share of documents where the kept functions abstain or disagree) is the
      // baseline that nightly runs compare against to detect drift.
      const votes = pass.batches.flatMap((b) => b[spec.name].values.map((row) => row.map((v) => normalizeForComparison(v))));
      decided.health.set(attributeIds[i], toHealth(countHealth(votes, deps.settings.jobs.agreementShare)));
      repo.saveAccuracies(deps.db, keptIds, accuracies);
      const attrCells: MaterialCell[] = chosen.map((c) => ({
        documentId: c.documentId,
        attributeId: attributeIds[i],
        ...cellValues(c.value),
        origin: c.value ? 'functions' : 'none',
        confidence: c.confidence,
        functions: c.agreeing.map((f) => String(keptIds[f])),
        span: null,
      }));
      if (params.fallbackDirect) await directFallback(run, spec, attrCells);
      const list = finalizeCells(attrCells, silver.get(spec.name)!);
      decided.lists.push(list);
      decided.types.push(list ? 'text' : (spec.type ?? inferType(attrCells.map((c) => c.value))));
      decided.filled.set(spec.name, attrCells.filter((c) => c.value !== null).length);
      decided.cells.push(...attrCells);
    }
  });
  return decided;
}

/** Direct extraction on the documents where every function abstained (up to the fallback limit); fills cells in place. */
async function directFallback(run: Run, spec: AttributeSpec, attrCells: MaterialCell[]): Promise<void> {
  const { deps, ctx, fallbackLlm, call } = run;
  const p = deps.settings.pipeline;
  const missing = attrCells.filter((c) => c.value === null).slice(0, p.fallbackMaxDocuments);
  const direct = await ctx.checkpoint(`attribute:${spec.name}:fallback`, async () => {
    const texts = repo.loadTexts(deps.db, missing.map((c) => c.documentId));
    const out: Record<number, string[] | null> = {};
    let done = 0;
    ctx.progress(`fallback ${spec.name}`, 0, missing.length);
    // On workers, as many calls in flight as the coordinator lets through (they are gathered into shards);
    // each of them listens to the job's signal.
    const concurrency = deps.fallbackLlm ? deps.settings.shards.directInFlight : directConcurrency(deps.settings);
    setMaxListeners(Math.max(getMaxListeners(ctx.signal), concurrency + 10), ctx.signal);
    await mapLimit(missing, concurrency, async (c) => {
      out[c.documentId] = await extractDirect(
        fallbackLlm,
        spec,
        { text: texts.get(c.documentId) ?? '' },
        { contextTokens: p.directContextTokens, maxTokens: p.directMaxTokens, maxTokensCeiling: p.directMaxTokensCeiling, call },
      );
      ctx.progress(`fallback ${spec.name}`, ++done, missing.length);
    });
    return out;
  });
  for (const c of missing) {
    const v = direct[c.documentId];
    if (v) Object.assign(c, { ...cellValues(v), origin: 'direct', confidence: 0.5 });
  }
}

/** Spans (where each value stands in documents.text, read batch by batch so memory stays flat), then the typed table. */
async function materialize(run: Run, specs: AttributeSpec[], attributeIds: number[], decided: Decided, documents: JobDocuments): Promise<ReturnType<typeof columnsFor>> {
  const { deps, ctx, corpus } = run;
  const { db } = deps;
  const docIds = documents.ids;
  ctx.progress('materialize', 0, 1);
  const table = resultTableName(corpus.name, corpus.id);
  const columns = columnsFor(specs.map((s, i) => ({ id: attributeIds[i], name: s.name, type: decided.types[i] }))).map((c, i) =>
    decided.lists[i] ? { ...c, list: true } : c,
  );
  await run.timed('materialize', () =>
    ctx.checkpoint('materialize', async () => {
      const byDoc = new Map<number, MaterialCell[]>();
      for (const c of decided.cells) if (c.value !== null) (byDoc.get(c.documentId) ?? byDoc.set(c.documentId, []).get(c.documentId)!).push(c);
      for (const ids of documents.batches) {
        const texts = repo.loadTexts(db, ids);
        for (const [id, text] of texts) for (const c of byDoc.get(id) ?? []) locateSpans(text, c);
      }
      columns.forEach((c) => repo.setAttributeType(db, c.attributeId, c.type));
      materializeTable(db, { corpusId: corpus.id, table, jobId: ctx.jobId, columns, documentIds: docIds, cells: decided.cells });
      for (const [attributeId, h] of decided.health) recordHealth(db, { jobId: ctx.jobId, corpusId: corpus.id, attributeId, runKind: 'full', ...h });
      return { rows: docIds.length };
    }),
  );
  ctx.progress('done', 1, 1);
  return columns;
}

function summarize(
  run: Run,
  r: { specs: AttributeSpec[]; columns: ReturnType<typeof columnsFor>; learned: Learned; decided: Decided; dropped: string[]; cut: string[]; pass: CorpusPass; rows: number },
): ExtractResult {
  const m = run.meter;
  const table = resultTableName(run.corpus.name, run.corpus.id);
  const meanDirectPrompt = m.directCalls ? m.directPromptTokens / m.directCalls : 0;
  const attributes = r.specs.map((s, i) => ({ ...r.learned.summaries.get(s.name)!, column: r.columns[i].column, type: r.decided.types[i], filled: r.decided.filled.get(s.name) ?? 0 }));
  return {
    corpusId: run.corpus.id,
    table,
    provenanceTable: `${table}__provenance`,
    rows: r.rows,
    attributes,
    dropped: r.dropped,
    cut: r.cut,
    llm: { calls: m.calls, cachedCalls: m.cachedCalls, promptTokens: m.promptTokens, completionTokens: m.completionTokens },
    directTokensEstimate: Math.round(meanDirectPrompt * r.rows * r.specs.length),
    functionEvaluations: r.pass.functionEvaluations,
    stageMs: run.stageMs,
    warnings: emptyAttributeWarnings(attributes, { hasModel: run.hasModel('synthesis'), labelledDocuments: (name) => run.labelled.get(name)?.withValue ?? 0 }),
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
