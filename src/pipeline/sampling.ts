/**
 * Picks the sample the LLM reads: k documents spread over the corpus by size and by source file name,
 * deterministic for a seed, never the same document twice.
 */
import type { DocumentSummary } from './types.js';
import { seededRandom } from '../random.js';

export { seededRandom };

/** Directory part of a file name: documents uploaded from different folders/sites count as different sources. */
function sourceOf(filename: string): string {
  const i = filename.lastIndexOf('/');
  return i < 0 ? '' : filename.slice(0, i);
}

export function sampleDocuments(docs: readonly DocumentSummary[], k: number, seed: number): number[] {
  const unique = [...new Map(docs.map((d) => [d.id, d])).values()];
  if (unique.length <= k) return unique.map((d) => d.id).sort((a, b) => a - b);
  const random = seededRandom(seed);
  // Round-robin over sources so every folder is represented, then stratify by size within the picks.
  const bySource = new Map<string, DocumentSummary[]>();
  for (const d of unique) {
    const s = sourceOf(d.filename);
    if (!bySource.has(s)) bySource.set(s, []);
    bySource.get(s)!.push(d);
  }
  const sources = [...bySource.keys()].sort();
  const quota = new Map<string, number>();
  for (let i = 0; i < k; i++) {
    const s = sources[i % sources.length];
    quota.set(s, Math.min(bySource.get(s)!.length, (quota.get(s) ?? 0) + 1));
  }
  const picked: number[] = [];
  for (const s of sources) {
    const group = bySource.get(s)!.sort((a, b) => a.byteSize - b.byteSize || a.id - b.id);
    const q = quota.get(s) ?? 0;
    for (let i = 0; i < q; i++) {
      // One document from each of q equal size strata.
      const lo = Math.floor((i * group.length) / q);
      const hi = Math.floor(((i + 1) * group.length) / q);
      picked.push(group[lo + Math.floor(random() * (hi - lo))].id);
    }
  }
  // Sources with fewer documents than their quota leave room: fill at random from the rest.
  const chosen = new Set(picked);
  const rest = unique.filter((d) => !chosen.has(d.id)).sort((a, b) => a.id - b.id);
  while (chosen.size < k && rest.length > 0) chosen.add(rest.splice(Math.floor(random() * rest.length), 1)[0].id);
  return [...chosen].sort((a, b) => a - b);
}
