/**
 * The pipeline's view of model answers, on top of the one parser (src/llm/parse.ts): JSON objects,
 * extract() sources and value fields. Malformed answers yield undefined, never an exception: a bad
 * answer costs one candidate, not the job.
 */
import { extractFunctionSource, extractJson } from '../llm/parse.js';
export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  return extractJson(text, 'object') as Record<string, unknown> | undefined;
}

/** The source of the answer's extract function (fenced or bare), or undefined when there is none. */
export function parseCode(text: string): string | undefined {
  return extractFunctionSource(text, 'extract');
}

/** A value field as a list of non-empty strings, or null (absent / malformed). */
export function valueList(value: unknown): string[] | null {
  const list = Array.isArray(value) ? value : [value];
  const out = list
    .filter((v): v is string | number => typeof v === 'string' || typeof v === 'number')
    .map((v) => String(v).trim())
    .filter((v) => v !== '' && !/^(null|none|n\/a|unknown)$/i.test(v));
  return out.length > 0 ? out : null;
}
