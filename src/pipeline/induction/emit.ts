/**
 * Source emission helpers. Every literal that came from a document goes through `lit`, so page text can
 * never become code; descriptions go into a comment that page text cannot close.
 */
import type { Rule } from './types.js';

export const lit = (value: unknown): string => JSON.stringify(value);

export function commentLine(text: string): string {
  return text.replace(/\*\//g, '* /').replace(/[\r\n\u2028\u2029]+/g, ' ');
}

/** Whole function source in the sandbox contract, with the rule's description and its measured agreement. */
export function emitSource(rule: Rule, provenance: string): string {
  const body = rule
    .body()
    .split('\n')
    .map((line) => (line ? '  ' + line : line))
    .join('\n');
  return `/**\n * ${commentLine(rule.description)}\n * ${commentLine(provenance)}\n */\nfunction extract(text, doc) {\n${body}\n}\n`;
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
