/**
 * Schema identification (open mode): attributes the model sees in sample passages, merged across names
 * that mean the same, ranked by how many sample documents carry them, and checked for plausible values.
 */
import { attributeNameProblem } from '../store/attribute-names.js';
import type { CallContext, LlmProvider } from '../llm/types.js';
import { listAttributesPrompt, mergeSynonymsPrompt, plausibilityPrompt } from './prompts.js';
import { parseJsonObject } from './llm-output.js';
import { mapLimit } from './direct.js';

/** snake_case, singular-ish key used to merge trivially equal names ("Authors", "author"). */
export function canonicalName(name: string): string {
  const snake = name
    .trim()
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, '_')
    .replace(/^_+|_+$/g, '');
  if (snake.endsWith('ies') && snake.length > 4) return snake.slice(0, -3) + 'y';
  if (snake.endsWith('ses') || snake.endsWith('xes')) return snake.slice(0, -2);
  if (snake.endsWith('s') && !snake.endsWith('ss') && snake.length > 3) return snake.slice(0, -1);
  return snake;
}

export interface DiscoveredAttribute {
  name: string;
  /** Sample documents whose passages mention it. */
  support: number;
  aliases: string[];
}

export async function discoverAttributes(
  llm: LlmProvider,
  contexts: readonly { docId: number; text: string }[],
  call?: CallContext,
): Promise<DiscoveredAttribute[]> {
  const perDoc = new Map<string, Set<number>>();
  const spellings = new Map<string, Map<string, number>>();
  await mapLimit(contexts, 4, async (c) => {
    const r = await llm.complete({ messages: listAttributesPrompt(c.text), role: 'schema', temperature: 0, jsonMode: true, maxTokens: 400 }, call);
    const parsed = parseJsonObject(r.texts[0] ?? '');
    const names = Array.isArray(parsed?.attributes) ? parsed!.attributes : [];
    for (const raw of names) {
      if (typeof raw !== 'string') continue;
      const key = canonicalName(raw);
      // A model's proposal is held to the same rules as a user's (no __proto__, constructor, _internal).
      if (!key || key.length > 60 || attributeNameProblem(key) !== null) continue;
      if (!perDoc.has(key)) perDoc.set(key, new Set());
      perDoc.get(key)!.add(c.docId);
      const s = spellings.get(key) ?? new Map<string, number>();
      s.set(raw, (s.get(raw) ?? 0) + 1);
      spellings.set(key, s);
    }
  });
  return [...perDoc.entries()].map(([key, docs]) => ({ name: key, support: docs.size, aliases: [...spellings.get(key)!.keys()] }));
}

/** Merges groups the model says are synonyms; the best-supported name of a group survives. */
export async function mergeSynonyms(llm: LlmProvider, found: DiscoveredAttribute[], call?: CallContext): Promise<DiscoveredAttribute[]> {
  if (found.length < 2) return found;
  const r = await llm.complete({ messages: mergeSynonymsPrompt(found.map((f) => f.name)), role: 'schema', temperature: 0, jsonMode: true, maxTokens: 400 }, call);
  const groups = parseJsonObject(r.texts[0] ?? '')?.groups;
  const byName = new Map(found.map((f) => [f.name, { ...f, docs: f.support }]));
  if (!Array.isArray(groups)) return found;
  for (const g of groups) {
    if (!Array.isArray(g)) continue;
    const members = [...new Set(g.filter((n): n is string => typeof n === 'string').map(canonicalName))].filter((n) => byName.has(n));
    if (members.length < 2) continue;
    members.sort((a, b) => byName.get(b)!.support - byName.get(a)!.support || a.localeCompare(b));
    const keep = byName.get(members[0])!;
    for (const m of members.slice(1)) {
      const other = byName.get(m)!;
      // Support is the number of documents, so a merged group counts a document once: bounded by the sample.
      keep.support = Math.max(keep.support, other.support);
      keep.aliases.push(m, ...other.aliases);
      byName.delete(m);
    }
  }
  return [...byName.values()].map(({ name, support, aliases }) => ({ name, support, aliases }));
}

export function rankAttributes(found: DiscoveredAttribute[], max: number, minSupport = 1): DiscoveredAttribute[] {
  return [...found]
    .filter((f) => f.support >= minSupport)
    .sort((a, b) => b.support - a.support || a.name.localeCompare(b.name))
    .slice(0, max);
}

/** True when the model judges the sample values plausible for the attribute (and there are any). */
export async function isPlausible(llm: LlmProvider, attribute: string, values: readonly string[], call?: CallContext): Promise<boolean> {
  if (values.length === 0) return false;
  const r = await llm.complete({ messages: plausibilityPrompt(attribute, values.slice(0, 10)), role: 'schema', temperature: 0, jsonMode: true, maxTokens: 50 }, call);
  const parsed = parseJsonObject(r.texts[0] ?? '');
  // An unreadable verdict keeps the attribute: the check exists to drop clear failures only.
  return parsed?.plausible !== false;
}
