/**
 * Function synthesis: several prompt variants x sample documents x temperatures, each asking for n
 * candidates; answers are parsed into sources and deduplicated by their normalized text.
 */
import { createHash } from 'node:crypto';
import type { CallContext, LlmProvider } from '../llm/types.js';
import { PROMPT_VERSION, SYNTHESIS_VARIANTS, synthesisPrompt } from './prompts.js';
import { parseCode } from './llm-output.js';
import { attributeQuery, selectContext } from './retrieval.js';
import type { AttributeSpec, Candidate, PipelineDocument } from './types.js';
import { mapLimit } from './direct.js';
import { labelTypicality } from './silver-quality.js';

/** Comments and whitespace do not make a function different. */
export function normalizeSource(source: string): string {
  return source
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:'"\\])\/\/[^\n]*/g, '$1')
    .replace(/\s+/g, ' ')
    .replace(/\s*([{}();,=+\-*/<>!?:[\].])\s*/g, '$1')
    .trim();
}

export function sourceHash(source: string): string {
  return createHash('sha256').update(normalizeSource(source)).digest('hex').slice(0, 16);
}

/** The part of the raw HTML around the value (or the start of the body), what a function author needs to see. */
export function htmlExcerpt(html: string, value: string[] | null, chars: number): string {
  let at = -1;
  for (const v of value ?? []) {
    at = html.indexOf(v);
    if (at < 0) at = html.toLowerCase().indexOf(v.toLowerCase());
    if (at >= 0) break;
  }
  if (at < 0) {
    const body = html.search(/<body/i);
    at = body < 0 ? 0 : body + chars / 2;
  }
  const start = Math.max(0, at - chars / 2);
  return html.slice(start, start + chars);
}

export interface SynthesisOptions {
  candidates: number;
  /** Sample documents shown to the model, one per call. */
  documents: number;
  temperatures: readonly number[];
  contextTokens: number;
  call?: CallContext;
}

export async function synthesizeFunctions(
  llm: LlmProvider,
  attribute: AttributeSpec,
  sample: readonly { doc: PipelineDocument; value: string[] | null; /** a person gave this label */ given?: boolean }[],
  options: SynthesisOptions,
): Promise<Candidate[]> {
  // The value a prompt shows teaches every function written from it. Documents with a value teach more than
  // ones without; a label a person gave beats a silver one; among silver labels, those shaped like the others
  // come first, so one odd label (a title given with its format note) is not what the model learns from.
  const typical = labelTypicality(sample.map((s) => s.value));
  const rank = new Map(sample.map((s, i) => [s, typical[i]]));
  const shown = [...sample]
    .sort(
      (a, b) =>
        Number(b.value !== null) - Number(a.value !== null) ||
        Number(b.given ?? false) - Number(a.given ?? false) ||
        rank.get(b)! - rank.get(a)! ||
        a.doc.id - b.doc.id,
    )
    .slice(0, options.documents);
  const plan: { variant: (typeof SYNTHESIS_VARIANTS)[number]; item: (typeof shown)[number]; temperature: number }[] = [];
  shown.forEach((item, i) => {
    for (const variant of SYNTHESIS_VARIANTS) plan.push({ variant, item, temperature: options.temperatures[(i + plan.length) % options.temperatures.length] });
  });
  const n = Math.max(1, Math.ceil(options.candidates / Math.max(1, plan.length)));
  const seen = new Map<string, Candidate>();
  const answers: { text: string; prompt: string }[][] = [];
  await mapLimit(plan, 4, async (p, i) => {
    const excerpt = p.item.doc.html
      ? { text: '', html: htmlExcerpt(p.item.doc.html, p.item.value, options.contextTokens * 4) }
      : { text: selectContext(p.item.doc.text, attributeQuery(attribute.name, attribute.description), options.contextTokens) };
    const r = await llm.complete(
      { messages: synthesisPrompt(p.variant, attribute.name, attribute.description ?? '', { ...excerpt, value: p.item.value }), role: 'synthesis', temperature: p.temperature, n, seed: i, maxTokens: 800 },
      options.call,
    );
    answers[i] = r.texts.map((text) => ({ text, prompt: `${PROMPT_VERSION}:${p.variant}:t${p.temperature}` }));
  });
  // Deterministic order regardless of which answer arrived first.
  for (const list of answers) {
    for (const a of list ?? []) {
      const source = parseCode(a.text);
      if (!source) continue;
      const id = sourceHash(source);
      if (!seen.has(id)) seen.set(id, { id, source, origin: 'llm', prompt: a.prompt });
    }
  }
  return [...seen.values()];
}
