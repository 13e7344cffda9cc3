/**
 * Runs induced sources over documents. Placeholder until the sandbox lands.
 */
import type { SandboxDocument } from '../../sandbox/types.js';

export async function runCandidates(sources: string[], documents: SandboxDocument[]): Promise<(string[] | null)[][]> {
  return sources.map((source) => {
    // eslint-disable-next-line no-new-func
    const fn = new Function('text', 'doc', `${source}\nreturn extract(text, doc);`) as (t: string, d: unknown) => unknown;
    return documents.map((d) => {
      const out = fn(d.text, { html: d.html });
      return out === null || out === undefined ? null : Array.isArray(out) ? (out as string[]) : [String(out)];
    });
  });
}
