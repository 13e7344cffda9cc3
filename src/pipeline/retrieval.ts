/**
 * Cheap lexical retrieval (BM25) of the chunks of one document most relevant to an attribute, so direct
 * extraction reads a few thousand tokens instead of the whole page.
 */
const K1 = 1.2;
const B = 0.75;

export function lexicalTokens(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** Query terms of an attribute: its name split on _ - and camel case, plus its description. */
export function attributeQuery(name: string, description = ''): string[] {
  const spaced = name.replace(/([a-z])([A-Z])/g, '$1 $2').replace(/[_-]+/g, ' ');
  return [...new Set(lexicalTokens(`${spaced} ${description}`))];
}

/** Indexes of passages, best first (ties keep document order). */
export function rankPassages(passages: readonly string[], query: readonly string[]): number[] {
  const docs = passages.map((p) => lexicalTokens(p));
  const n = docs.length;
  const avg = docs.reduce((s, d) => s + d.length, 0) / Math.max(1, n);
  const df = new Map<string, number>();
  const tfs = docs.map((d) => {
    const tf = new Map<string, number>();
    for (const t of d) tf.set(t, (tf.get(t) ?? 0) + 1);
    for (const t of tf.keys()) df.set(t, (df.get(t) ?? 0) + 1);
    return tf;
  });
  const scores = tfs.map((tf, i) => {
    let s = 0;
    for (const q of query) {
      const f = tf.get(q);
      if (!f) continue;
      const idf = Math.log(1 + (n - df.get(q)! + 0.5) / (df.get(q)! + 0.5));
      s += (idf * f * (K1 + 1)) / (f + K1 * (1 - B + (B * docs[i].length) / Math.max(1, avg)));
    }
    return s;
  });
  return scores.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, i]) => i);
}

/** Splits text into passages of whole lines up to about `chars` characters each, with their offsets. */
export function passages(text: string, chars: number): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  let start = 0;
  let pos = 0;
  while (pos < text.length) {
    let nl = text.indexOf('\n', pos);
    nl = nl < 0 ? text.length : nl + 1;
    if (nl - start > chars && pos > start) {
      out.push({ start, end: pos });
      start = pos;
    }
    // A single line longer than the budget is cut where it stands.
    while (nl - start > chars) {
      out.push({ start, end: start + chars });
      start += chars;
    }
    pos = nl;
  }
  if (pos > start) out.push({ start, end: pos });
  return out;
}

/**
 * The passages of a document most relevant to a query, in document order, within a budget of about
 * `maxTokens` (4 characters a token); always at least the best one.
 */
export function selectContext(text: string, query: readonly string[], maxTokens: number, passageTokens = 250): string {
  const spans = passages(text, passageTokens * 4);
  const order = rankPassages(spans.map((c) => text.slice(c.start, c.end)), query);
  const picked: number[] = [];
  let used = 0;
  for (const i of order) {
    const len = spans[i].end - spans[i].start;
    if (picked.length > 0 && used + len > maxTokens * 4) continue;
    picked.push(i);
    used += len;
  }
  return picked
    .sort((a, b) => a - b)
    .map((i) => text.slice(spans[i].start, spans[i].end).trim())
    .join('\n...\n');
}
