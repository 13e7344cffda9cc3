/**
 * What the server and the CLI call to start extractions: request validation, the services the job needs
 * (composed LLM stack, sandbox pool, label model), and the handler the job runner registers as "extract".
 */
import { attributeNameProblem } from '../store/attribute-names.js';
import type { Db } from '../store/database.js';
import type { Settings } from '../config.js';
import type { LlmProvider } from '../llm/types.js';
import type { Sandbox } from '../sandbox/types.js';
import type { JobHandler } from '../jobs/types.js';
import { createLlm, routeByRole, setJobBudget, sharedLimiter } from '../llm/index.js';
import { localBasedFromSettings, type LocalBasedProvider } from '../llm/local/provider.js';
import { JobService } from '../jobs/service.js';
import { JobRunner } from '../jobs/runner.js';
import { createSandbox } from '../sandbox/index.js';
import { labelModelFromSettings } from '../weak-supervision/index.js';
import { inductionHook } from './induction/candidates.js';
import { EvaporateError } from '../errors.js';
import { createExtractHandler, type ExtractDeps, type ExtractParams, type ExtractResult } from './extract-job.js';
import type { AttributeSpec } from './types.js';

export const EXTRACT_JOB_KIND = 'extract';

export interface ExtractRequest extends Omit<ExtractParams, 'corpusId'> {
  budget?: { maxTokens?: number; maxUsd?: number };
}

const TYPES = ['text', 'integer', 'real', 'date'];

/** Checks a request body (REST or CLI) and returns clean job params; every mistake is a 400 with a sentence. */
export function parseExtractRequest(corpusId: number, body: unknown): { params: ExtractParams; budget?: ExtractRequest['budget'] } {
  const b = (body ?? {}) as Record<string, unknown>;
  const bad = (msg: string) => new EvaporateError('invalid_extraction', msg, 400);
  const mode = b.mode ?? (b.attributes ? 'closed' : 'open');
  if (mode !== 'open' && mode !== 'closed') throw bad('"mode" must be "open" (discover the attributes) or "closed" (extract the ones you list).');
  let attributes: AttributeSpec[] | undefined;
  if (b.attributes !== undefined) {
    if (!Array.isArray(b.attributes) || b.attributes.length === 0 || b.attributes.length > 100) throw bad('"attributes" must be a list of 1 to 100 attribute names or {name, description, type} objects.');
    attributes = b.attributes.map((a: unknown) => {
      const spec = typeof a === 'string' ? { name: a } : (a as Record<string, unknown>);
      const problem = spec ? attributeNameProblem(spec.name) : 'An attribute is a name or a {name, description, type} object.';
      if (problem) throw bad(problem);
      if (spec.type !== undefined && !TYPES.includes(String(spec.type))) throw bad(`Attribute type must be one of ${TYPES.join(', ')}.`);
      if (spec.description !== undefined && (typeof spec.description !== 'string' || spec.description.length > 500)) throw bad('An attribute description is a string of at most 500 characters.');
      return { name: String(spec.name).trim(), ...(spec.description ? { description: spec.description as string } : {}), ...(spec.type ? { type: spec.type as AttributeSpec['type'] } : {}) };
    });
  }
  if (mode === 'closed' && !attributes) throw bad('A closed extraction needs "attributes": the names of the columns to extract.');
  const int = (key: string, min: number, max: number): number | undefined => {
    const v = b[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`"${key}" must be a whole number from ${min} to ${max}.`);
    return v;
  };
  let budget: ExtractRequest['budget'];
  if (b.budget !== undefined) {
    const g = b.budget as Record<string, unknown>;
    if (!g || typeof g !== 'object') throw bad('"budget" is an object: {"maxTokens": n, "maxUsd": x}.');
    for (const k of ['maxTokens', 'maxUsd']) if (g[k] !== undefined && (typeof g[k] !== 'number' || (g[k] as number) < 0)) throw bad(`"budget.${k}" must be a non-negative number.`);
    budget = { maxTokens: g.maxTokens as number | undefined, maxUsd: g.maxUsd as number | undefined };
  }
  if (b.fallbackDirect !== undefined && typeof b.fallbackDirect !== 'boolean') throw bad('"fallbackDirect" is true or false.');
  return {
    params: {
      corpusId,
      mode,
      ...(attributes ? { attributes } : {}),
      sampleSize: int('sampleSize', 1, 100),
      candidates: int('candidates', 1, 200),
      topK: int('topK', 1, 50),
      maxAttributes: int('maxAttributes', 1, 100),
      seed: int('seed', 0, 2 ** 31 - 1),
      fallbackDirect: b.fallbackDirect as boolean | undefined,
    },
    budget,
  };
}

export interface PipelineServices extends ExtractDeps {
  close(): Promise<void>;
}

/** The model name requests to the local engine carry (and `evaporate worker` serves them under). */
export const LOCAL_MODEL_NAME = 'local-based';

/**
 * The model stack of a job. With EVAPORATE_LOCAL_MODEL_DIR set, direct extraction (the per-document volume)
 * goes to the local BASED engine while schema discovery and synthesis stay on the configured endpoint; each
 * side is cached, counted and budgeted on its own.
 */
export function pipelineLlm(db: Db, settings: Settings): LlmProvider {
  const remote = createLlm({ db, settings });
  if (!settings.local.modelDir) return remote;
  const limiter = localLimiter(settings);
  const local = createLlm({
    db,
    settings,
    provider: sharedLocalProvider(settings.local),
    models: { extraction: LOCAL_MODEL_NAME, default: LOCAL_MODEL_NAME },
    limiter,
  });
  return routeByRole({ extraction: local, synthesis: remote, schema: remote });
}

/**
 * The engine batches concurrent requests into shared forwards, so the local route lets a full batch in at
 * once, with no per-minute limits (those are an endpoint's account limits, not the machine's).
 */
export function localLimiter(settings: Settings) {
  return sharedLimiter(`${LOCAL_MODEL_NAME}@${settings.local.modelDir}`, {
    ...settings,
    llm: { ...settings.llm, concurrency: settings.local.maxBatch, requestsPerMinute: 0, tokensPerMinute: 0 },
  });
}

// One engine per model and settings in a process: jobs that share it share its batches (and its memory).
const localProviders = new Map<string, LocalBasedProvider>();
export function sharedLocalProvider(local: Settings['local']): LocalBasedProvider {
  const key = JSON.stringify(local);
  let provider = localProviders.get(key);
  if (!provider) {
    provider = localBasedFromSettings(local);
    localProviders.set(key, provider);
  }
  return provider;
}

/** The job's services from settings and the environment (OPENAI_BASE_URL, EVAPORATE_MODEL...). */
export function createPipelineServices(
  db: Db,
  settings: Settings,
  overrides: { llm?: LlmProvider; sandbox?: Sandbox; extraCandidates?: ExtractDeps['extraCandidates'] | null } = {},
): PipelineServices {
  const sandbox = overrides.sandbox ?? createSandbox(settings.sandbox);
  return {
    db,
    settings,
    llm: overrides.llm ?? pipelineLlm(db, settings),
    sandbox,
    labelModel: labelModelFromSettings(settings.labelModel),
    // Wrapper induction adds zero-token candidates learned from user labels and the sample's silver labels.
    extraCandidates: overrides.extraCandidates === null ? undefined : (overrides.extraCandidates ?? inductionHook(db, settings)),
    close: () => (overrides.sandbox ? Promise.resolve() : sandbox.close()),
  };
}

export function extractHandler(deps: ExtractDeps): JobHandler<ExtractParams, ExtractResult> {
  return createExtractHandler(deps);
}

/**
 * Runs one extraction to the end in this process, through the durable job machinery (so a crash leaves a
 * resumable job and the ledger counts every call): enqueue, then claim and run it here.
 */
export async function runExtractionHere(
  services: ExtractDeps,
  corpusId: number,
  request: unknown,
  options: { onQueued?: (jobId: number) => void } = {},
): Promise<{ jobId: number; result: ExtractResult }> {
  const { params, budget } = parseExtractRequest(corpusId, request);
  const service = new JobService(services.db);
  const job = service.enqueue({ kind: EXTRACT_JOB_KIND, corpusId, params });
  if (budget && (budget.maxTokens || budget.maxUsd)) setJobBudget(services.db, job.id, budget);
  options.onQueued?.(job.id);
  const runner = new JobRunner({ db: services.db, settings: services.settings.jobs, handlers: { [EXTRACT_JOB_KIND]: extractHandler(services) } });
  // Older queued extract jobs run first (oldest first), so keep claiming until ours has ended.
  for (;;) {
    const ran = await runner.runOnce();
    const view = service.get(job.id);
    if (['succeeded', 'failed', 'cancelled'].includes(view.state)) {
      if (view.state !== 'succeeded')
        throw new EvaporateError(view.error?.code ?? 'extraction_failed', view.error?.message ?? `Extraction job ${job.id} ended ${view.state}.`, 500);
      return { jobId: job.id, result: view.result as ExtractResult };
    }
    if (!ran) await new Promise((r) => setTimeout(r, services.settings.jobs.pollMs));
  }
}
