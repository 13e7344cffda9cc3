/**
 * Schema identification (open mode): attributes the model sees in sample passages, merged across names
 * that mean the same, ranked by how many sample documents carry them, and checked for plausible values.
 * Ties in that count are common (a site's template puts the same fields on every page), so they are broken
 * by how often the model named the attribute and by how early it names it (models list a page's fields in
 * reading order: the title before the price), never by the name; what the cap cuts is reported.
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
  /** Times the model named it (or a synonym) over the sample; at least support. */
  mentions?: number;
  /** Mean place in the model's lists, 0 = first named, 1 = last (undefined when unknown). */
  position?: number;
}

export async function discoverAttributes(
  llm: LlmProvider,
  contexts: readonly { docId: number; text: string }[],
  call?: CallContext,
): Promise<DiscoveredAttribute[]> {
  const perDoc = new Map<string, Set<number>>();
  const spellings = new Map<string, Map<string, number>>();
  const places = new Map<string, number[]>();
  await mapLimit(contexts, 4, async (c) => {
    const r = await llm.complete({ messages: listAttributesPrompt(c.text), role: 'schema', temperature: 0, jsonMode: true, maxTokens: 400 }, call);
    const parsed = parseJsonObject(r.texts[0] ?? '');
    const names = Array.isArray(parsed?.attributes) ? parsed!.attributes : [];
    for (const [index, raw] of names.entries()) {
      if (typeof raw !== 'string') continue;
      const key = canonicalName(raw);
      // A model's proposal is held to the same rules as a user's (no __proto__, constructor, _internal).
      if (!key || key.length > 60 || attributeNameProblem(key) !== null) continue;
      if (!perDoc.get(key)?.has(c.docId)) (places.get(key) ?? places.set(key, []).get(key)!).push(names.length > 1 ? index / (names.length - 1) : 0);
      if (!perDoc.has(key)) perDoc.set(key, new Set());
      perDoc.get(key)!.add(c.docId);
      const s = spellings.get(key) ?? new Map<string, number>();
      s.set(raw, (s.get(raw) ?? 0) + 1);
      spellings.set(key, s);
    }
  });
  return [...perDoc.entries()].map(([key, docs]) => ({
    name: key,
    support: docs.size,
    aliases: [...spellings.get(key)!.keys()],
    mentions: [...spellings.get(key)!.values()].reduce((a, b) => a + b, 0),
    position: mean(places.get(key) ?? []),
  }));
}

function mean(xs: readonly number[]): number | undefined {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
}

/** Merges groups the model says are synonyms; the best-supported name of a group survives. */
export async function mergeSynonyms(llm: LlmProvider, found: DiscoveredAttribute[], call?: CallContext): Promise<DiscoveredAttribute[]> {
  if (found.length < 2) return found;
  const r = await llm.complete({ messages: mergeSynonymsPrompt(found.map((f) => f.name)), role: 'schema', temperature: 0, jsonMode: true, maxTokens: 400 }, call);
  const groups = parseJsonObject(r.texts[0] ?? '')?.groups;
  const byName = new Map(found.map((f) => [f.name, { ...f, aliases: [...f.aliases] }]));
  if (!Array.isArray(groups)) return found;
  for (const g of groups) {
    if (!Array.isArray(g)) continue;
    const members = [...new Set(g.filter((n): n is string => typeof n === 'string').map(canonicalName))].filter((n) => byName.has(n));
    if (members.length < 2) continue;
    members.sort((a, b) => byTieBreaks(byName.get(a)!, byName.get(b)!));
    const keep = byName.get(members[0])!;
    for (const m of members.slice(1)) {
      const other = byName.get(m)!;
      // Support is the number of documents, so a merged group counts a document once: bounded by the sample.
      keep.support = Math.max(keep.support, other.support);
      keep.aliases.push(m, ...other.aliases);
      keep.mentions = (keep.mentions ?? keep.support) + (other.mentions ?? other.support);
      if (other.position !== undefined) keep.position = Math.min(keep.position ?? 1, other.position);
      byName.delete(m);
    }
  }
  return [...byName.values()];
}

/**
 * Best first: more sample documents, then more mentions, then named earlier. The name only orders exact
 * ties of all three, so a result is the same on every run.
 */
function byTieBreaks(a: DiscoveredAttribute, b: DiscoveredAttribute): number {
  return (
    b.support - a.support ||
    (b.mentions ?? b.support) - (a.mentions ?? a.support) ||
    (a.position ?? 1) - (b.position ?? 1) ||
    a.name.localeCompare(b.name)
  );
}

export interface RankedSchema {
  kept: DiscoveredAttribute[];
  /** Attributes with enough support that the cap left out, best first: reported with the job's result. */
  cut: DiscoveredAttribute[];
}

export function rankSchema(found: DiscoveredAttribute[], max: number, minSupport = 1): RankedSchema {
  const ranked = found.filter((f) => f.support >= minSupport).sort(byTieBreaks);
  return { kept: ranked.slice(0, max), cut: ranked.slice(max) };
}

export function rankAttributes(found: DiscoveredAttribute[], max: number, minSupport = 1): DiscoveredAttribute[] {
  return rankSchema(found, max, minSupport).kept;
}

/** True when the model judges the sample values plausible for the attribute (and there are any). */
export async function isPlausible(llm: LlmProvider, attribute: string, values: readonly string[], call?: CallContext): Promise<boolean> {
  if (values.length === 0) return false;
  const r = await llm.complete({ messages: plausibilityPrompt(attribute, values.slice(0, 10)), role: 'schema', temperature: 0, jsonMode: true, maxTokens: 50 }, call);
  const parsed = parseJsonObject(r.texts[0] ?? '');
  // An unreadable verdict keeps the attribute: the check exists to drop clear failures only.
  return parsed?.plausible !== false;
}
