/**
 * Source emission helpers. Every literal that came from a document goes through `lit`, so page text can
 * never become code; descriptions go into a comment that page text cannot close.
 */
import type { Rule } from './types.js';

export const lit = (value: unknown): string => JSON.stringify(value);

export function commentLine(text: string): string {
  return text.replace(/\*\//g, '* /').replace(/[\r\n\u2028\u2029]+/g, ' ');
}

/**
 * Label punctuation at a value's edges (": Hachette", "410-821-6358 |") is the page's, not the value's: every
 * induced rule's output is trimmed of it, in process (cleanOutput) and in the emitted source (the same code).
 */
const TRIM_SOURCE = `function trimLabelPunctuation(v) {
  if (v === null || v === undefined) return null;
  const one = (s) => String(s).replace(/^[\\s:;,|>\\u2013\\u2014\\u00b7\\u2022]+/u, '').replace(/[\\s:;,|\\u2013\\u2014\\u00b7\\u2022]+$/u, '');
  if (Array.isArray(v)) {
    const out = v.map(one).filter(Boolean);
    return out.length ? out : null;
  }
  return one(v) || null;
}`;

/**
 * Anchors and delimiters match whole words only: "by" must not match inside "Gatsby", nor "Publisher" inside
 * "Publishers Weekly". A needle that starts (ends) with a letter or digit needs a non-word character before
 * (after) it.
 */
const WORD_SOURCE = `function indexOfWord(hay, needle, from) {
  const w = /[\\p{L}\\p{N}_]/u;
  for (let at = hay.indexOf(needle, from || 0); at >= 0; at = hay.indexOf(needle, at + 1)) {
    if (w.test(needle[0]) && at > 0 && w.test(hay[at - 1])) continue;
    if (w.test(needle[needle.length - 1]) && w.test(hay[at + needle.length] || '')) continue;
    return at;
  }
  return -1;
}`;

export const indexOfWord = new Function(`${WORD_SOURCE}\nreturn indexOfWord;`)() as (hay: string, needle: string, from?: number) => number;

// The in-process twin of TRIM_SOURCE, built from the same text so the two cannot drift apart.
const trimLabelPunctuation = new Function(`${TRIM_SOURCE}\nreturn trimLabelPunctuation;`)() as (v: unknown) => string | string[] | null;

export function cleanOutput(value: string[] | null): string[] | null {
  const out = trimLabelPunctuation(value);
  return out === null ? null : Array.isArray(out) ? out : [out];
}

/** Whole function source in the sandbox contract, with the rule's description and its measured agreement. */
export function emitSource(rule: Rule, provenance: string): string {
  const body = rule
    .body()
    .split('\n')
    .map((line) => (line ? '    ' + line : line))
    .join('\n');
  return `/**\n * ${commentLine(rule.description)}\n * ${commentLine(provenance)}\n */\nfunction extract(text, doc) {\n  return trimLabelPunctuation((() => {\n${body}\n  })());\n}\n\n${TRIM_SOURCE}\n\n${WORD_SOURCE}\n`;
}

/**
 * How little an anchor proves it is a label rather than page content that the few labelled pages happen to
 * share: "G" (a player's position) or "MA" (a state) before the value on every labelled page is a coincidence of
 * content more often than a label; "Height:" or "ISBN-13" rarely is. Added to a rule's complexity, so such an
 * anchor only wins when nothing structural agrees as well with the labels.
 */
export function weakAnchorPenalty(anchor: string | null): number {
  if (anchor === null) return 0;
  const a = anchor.trim();
  return a.replace(/[^\p{L}\p{N}]/gu, '').length <= 2 && !/:$/.test(a) ? 1 : 0;
}

/** A regular expression literal's source for a literal string. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Regex source splitting a list of values on the separators seen between them in the labels. */
export function splitterSource(separators: string[]): string | null {
  const parts = [...new Set(separators.map((s) => s.trim()).filter((s) => s !== ''))]
    .sort()
    .map((s) => (/^\w+$/.test(s) ? `\\s+${escapeRegExp(s)}\\s+` : `\\s*${escapeRegExp(s)}\\s*`));
  return parts.length ? parts.join('|') : null;
}
