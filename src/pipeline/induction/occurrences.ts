/**
 * Where a labelled value appears in a document's text. Labels are typed by people or copied from an LLM, so
 * whitespace and case may differ from the page; a match tolerates both, preferring an exact-case one.
 */
import { escapeRegExp } from './emit.js';

export interface LineOccurrence {
  line: number;
  start: number;
  end: number;
}

const MAX_OCCURRENCES = 25;

const WORD = /[\p{L}\p{N}_]/u;

/** A value is found as whole words: "Pot" is not in "Potter", "2008" not in "120083". */
function patternFor(value: string): string | null {
  const tokens = value.trim().split(/\s+/).filter(Boolean);
  if (!tokens.length) return null;
  const body = tokens.map(escapeRegExp).join('\\s+');
  const v = tokens.join(' ');
  return `${WORD.test(v[0]) ? '(?<![\\p{L}\\p{N}_])' : ''}${body}${WORD.test(v[v.length - 1]) ? '(?![\\p{L}\\p{N}_])' : ''}`;
}

export function findInLines(lines: string[], value: string): LineOccurrence[] {
  const pattern = patternFor(value);
  if (!pattern) return [];
  for (const flags of ['gu', 'giu']) {
    const re = new RegExp(pattern, flags);
    const found: LineOccurrence[] = [];
    const probe = value.trim().split(/\s+/)[0].toLowerCase();
    for (let i = 0; i < lines.length && found.length < MAX_OCCURRENCES; i++) {
      if (!lines[i].toLowerCase().includes(probe)) continue;
      re.lastIndex = 0;
      for (let m = re.exec(lines[i]); m && found.length < MAX_OCCURRENCES; m = re.exec(lines[i])) {
        found.push({ line: i, start: m.index, end: m.index + m[0].length });
        if (m[0].length === 0) re.lastIndex++;
      }
    }
    if (found.length) return found;
  }
  return [];
}

/** Same tolerance for comparing a node's text with a value. */
export function sameText(a: string, b: string): boolean {
  return a.replace(/\s+/g, ' ').trim().toLowerCase() === b.replace(/\s+/g, ' ').trim().toLowerCase();
}

export function collapse(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
