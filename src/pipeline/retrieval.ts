/**
 * Cheap lexical retrieval (BM25) of the chunks of one document most relevant to an attribute, so direct
 * extraction reads a few thousand tokens instead of the whole page; and the excerpts synthesis shows.
 */
import { decodeHTML } from 'entities';

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
    .join(ELISION);
}

/**
 * Where a cut leaves text out, on a line of its own: "..." inside or next to a word can be read as part of a
 * value, this cannot.
 */
export const ELISION = '\n[... part of the document left out ...]\n';

/**
 * The page's visible text with, for every character, its offset in the HTML: tags dropped (and the <head>,
 * scripts and styles with their content), entities decoded, whitespace collapsed to one space. It lets a value
 * copied from the readable text be found in markup that writes it differently ("Boston&nbsp;Celtics",
 * "Some<br>Title", "Tom &amp; Jerry").
 */
export function visibleTextMap(html: string): { text: string; offsets: number[] } {
  const chars: string[] = [];
  const offsets: number[] = [];
  const push = (c: string, at: number) => {
    if (/\s/.test(c)) {
      if (chars.length === 0 || chars[chars.length - 1] === ' ') return;
      c = ' ';
    }
    chars.push(c);
    offsets.push(at);
  };
  let i = 0;
  while (i < html.length) {
    const ch = html[i];
    if (ch === '<') {
      const close = html.indexOf('>', i);
      if (close < 0) break;
      const tag = /^<\s*([a-zA-Z0-9]+)/.exec(html.slice(i, Math.min(close + 1, i + 20)))?.[1]?.toLowerCase();
      // Invisible containers are skipped whole, so a <title> or a script never stands in for the visible value.
      if (tag === 'head' || tag === 'script' || tag === 'style' || tag === 'title' || tag === 'noscript') {
        const end = html.toLowerCase().indexOf(`</${tag}`, close);
        i = end < 0 ? close + 1 : html.indexOf('>', end) + 1 || html.length;
      } else i = close + 1;
      push(' ', i - 1);
      continue;
    }
    if (ch === '&') {
      const m = /^&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z][a-z0-9]{1,31});/i.exec(html.slice(i, i + 40));
      if (m) {
        for (const c of decodeHTML(m[0])) push(c, i);
        i += m[0].length;
        continue;
      }
    }
    push(ch, i);
    i++;
  }
  return { text: chars.join(''), offsets };
}

/** Offset in the HTML where the value is shown: through the visible text first, then the raw markup; -1 if nowhere. */
export function locateInHtml(html: string, values: readonly string[]): number {
  const map = visibleTextMap(html);
  const lower = map.text.toLowerCase();
  for (const v of values) {
    const want = v.replace(/\s+/g, ' ').trim().toLowerCase();
    if (!want) continue;
    const at = lower.indexOf(want);
    if (at >= 0) return map.offsets[at];
  }
  for (const v of values) {
    const at = html.toLowerCase().indexOf(v.trim().toLowerCase());
    if (v.trim() && at >= 0) return at;
  }
  return -1;
}

/** A window of `chars` characters of the readable text around the value (or the start), cut at line ends, cuts marked. */
export function textExcerpt(text: string, values: readonly string[] | null, chars: number): string {
  let at = -1;
  for (const v of values ?? []) {
    const words = v.trim().split(/\s+/).filter(Boolean).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    if (!words.length) continue;
    const m = new RegExp(words.join('\\s+'), 'i').exec(text);
    if (m) {
      at = m.index;
      break;
    }
  }
  if (at < 0) at = 0;
  let start = Math.max(0, at - Math.floor(chars / 2));
  let end = Math.min(text.length, start + chars);
  if (start > 0) start = text.lastIndexOf('\n', start) + 1;
  if (end < text.length) {
    const nl = text.indexOf('\n', end);
    end = nl < 0 || nl - end > 200 ? end : nl;
  }
  return `${start > 0 ? ELISION.trimStart() : ''}${text.slice(start, end).trim()}${end < text.length ? ELISION.trimEnd() : ''}`;
}
