/**
 * Direct extraction: the LLM reads the most relevant passages of one document and returns the value.
 * Used on the sample (silver labels) and as the optional per-document fallback.
 */
import type { Settings } from '../config.js';
import type { CallContext, LlmProvider } from '../llm/types.js';
import { isEvaporateError } from '../errors.js';
import { directExtractionPrompt } from './prompts.js';
import { attributeQuery, selectContext } from './retrieval.js';
import { parseJsonObject, valueList } from './llm-output.js';
import type { AttributeSpec, PipelineDocument } from './types.js';

export interface DirectOptions {
  contextTokens: number;
  call?: CallContext;
  /** Room for the answer (settings.pipeline.directMaxTokens); long-text attributes start with four times it. */
  maxTokens?: number;
  /** A cut answer is asked again with four times the room, up to this (settings.pipeline.directMaxTokensCeiling). */
  maxTokensCeiling?: number;
}

// Attributes whose values run to paragraphs: a 300-token answer would cut them, and a cut JSON answer is no value.
const LONG_TEXT = /descr|summary|abstract|overview|synopsis|review|biograph|body|content|details|comment|text|notes?\b/i;

/** The answer room to start with: sized to the kind of value, so a description is not cut to 300 tokens. */
export function directAnswerTokens(attribute: AttributeSpec, base: number, ceiling: number): number {
  return LONG_TEXT.test(`${attribute.name} ${attribute.description ?? ''}`) ? Math.min(ceiling, base * 4) : base;
}

export async function extractDirect(
  llm: LlmProvider,
  attribute: AttributeSpec,
  doc: Pick<PipelineDocument, 'text'>,
  options: DirectOptions,
): Promise<string[] | null> {
  const context = selectContext(doc.text, attributeQuery(attribute.name, attribute.description), options.contextTokens);
  const ceiling = Math.max(options.maxTokensCeiling ?? 4800, options.maxTokens ?? 300);
  let maxTokens = directAnswerTokens(attribute, options.maxTokens ?? 300, ceiling);
  let result;
  for (;;) {
    try {
      result = await llm.complete(
        { messages: directExtractionPrompt(attribute.name, attribute.description ?? '', context), role: 'extraction', temperature: 0, jsonMode: true, maxTokens, rejectTruncated: true },
        options.call,
      );
      break;
    } catch (err) {
      // An answer cut at max_tokens is a failure, not a value: ask again with more room, up to the ceiling.
      if (!(isEvaporateError(err) && err.code === 'llm_truncated')) throw err;
      // Still cut with all the room allowed: the value cannot be read whole, so there is no label.
      if (maxTokens >= ceiling) return null;
      maxTokens = Math.min(ceiling, maxTokens * 4);
    }
  }
  const parsed = parseJsonObject(result.texts[0] ?? '');
  if (!parsed) return null;
  const values = valueList(parsed.value);
  // A value the document does not contain is a hallucination, not a label.
  const text = doc.text.toLowerCase();
  const found = values?.filter((v) => text.includes(v.toLowerCase().replace(/\s+/g, ' ')) || text.replace(/\s+/g, ' ').includes(v.toLowerCase().replace(/\s+/g, ' '))) ?? [];
  return found.length > 0 ? found : null;
}

const ENDPOINT_CONCURRENCY = 4;

/**
 * Direct-extraction requests to keep in flight. The local engine decodes concurrent requests together, one
 * native forward per step for all of them, so it is given a full batch; an endpoint gets a few at a time.
 */
export function directConcurrency(settings: Pick<Settings, 'local'>): number {
  return settings.local.modelDir ? Math.max(ENDPOINT_CONCURRENCY, settings.local.maxBatch) : ENDPOINT_CONCURRENCY;
}

/** Silver labels for every sample document, a few requests at a time. */
export async function silverLabels(
  llm: LlmProvider,
  attribute: AttributeSpec,
  docs: readonly Pick<PipelineDocument, 'id' | 'text'>[],
  options: DirectOptions & { concurrency?: number },
): Promise<Record<number, string[] | null>> {
  const out: Record<number, string[] | null> = {};
  await mapLimit(docs, options.concurrency ?? ENDPOINT_CONCURRENCY, async (d) => {
    out[d.id] = await extractDirect(llm, attribute, d, options);
  });
  return out;
}

/**
 * Runs fn over items, `limit` at a time. After a failure no new item starts, and the first error is thrown only
 * once the calls in flight have ended: a failed job's ledger then counts every request it sent, and no call of
 * it is still running (and spending) after the job is marked failed.
 */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && !failure) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (error) {
        failure ??= { error };
      }
    }
  });
  await Promise.all(workers);
  if (failure) throw failure.error;
}
