/**
 * Text-anchor rules over the readable text, line by line: "the text after 'ISBN-13:' up to the end of the
 * line", "the line after the line that says 'Publisher'", optionally cut at a delimiter (" / ") and split
 * into several values on the separators the labels showed (", ").
 */
import { escapeRegExp, indexOfWord, lit, weakAnchorPenalty } from './emit.js';
import { findInLines } from './occurrences.js';
import type { PreparedDocument, Rule } from './types.js';

export interface TextAnchorParams {
  /** same-line: the value follows the anchor on its line; next-line: the value is the line after a line equal to the anchor. */
  mode: 'same-line' | 'next-line' | 'line-head';
  anchor: string;
  /** same-line only: the anchor must open the line (after indentation). */
  atLineStart: boolean;
  /** Cut the value at the first occurrence of this delimiter, if any. */
  stop: string | null;
  /** first: the first match in the document; all: every match (multi-valued attributes). */
  pick: 'first' | 'all';
  /** Regex source splitting one match into several values. */
  split: string | null;
}

const MAX_ANCHOR = 60;
const MAX_LABEL_LINE = 80;

export class TextAnchorRule implements Rule {
  readonly generator = 'text-anchor' as const;
  readonly key: string;
  readonly complexity: number;
  private readonly splitRe: RegExp | null;

  constructor(readonly p: TextAnchorParams) {
    this.key = 'text:' + JSON.stringify([p.mode, p.anchor, p.atLineStart, p.stop, p.pick, p.split]);
    this.complexity = 1 + (p.stop ? 1 : 0) + (p.pick === 'all' ? 0.5 : 0) + (p.split ? 0.5 : 0) + p.anchor.length / 100 + (p.mode === 'line-head' ? 0 : weakAnchorPenalty(p.anchor));
    this.splitRe = p.split ? new RegExp(p.split) : null;
  }

  get description(): string {
    const { p } = this;
    if (p.mode === 'line-head') {
      const which = p.pick === 'all' ? 'Every line' : 'The first line';
      return `${which} containing ${lit(p.stop)}: the text before it${p.split ? `, split into values on /${p.split}/` : ''}.`;
    }
    const where =
      p.mode === 'next-line'
        ? `the line after a line that says ${lit(p.anchor)}`
        : `the text after ${lit(p.anchor)}${p.atLineStart ? ' at the start of a line' : ''}`;
    const end = p.stop ? `up to ${lit(p.stop)} or the end of the line` : 'up to the end of the line';
    const which = p.pick === 'all' ? 'Every match of' : 'First match of';
    return `${which} ${where}, ${end}${p.split ? `, split into values on /${p.split}/` : ''}.`;
  }

  apply(doc: PreparedDocument): string[] | null {
    const { p } = this;
    const lines = doc.lines();
    const found: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      let raw: string;
      if (p.mode === 'line-head') {
        if (indexOfWord(lines[i], p.stop!) < 0) continue;
        raw = lines[i];
      } else if (p.mode === 'same-line') {
        const line = lines[i];
        const at = indexOfWord(line, p.anchor);
        if (at < 0 || (p.atLineStart && line.slice(0, at).trim())) continue;
        raw = line.slice(at + p.anchor.length);
      } else {
        if (lines[i].trim() !== p.anchor) continue;
        let j = i + 1;
        while (j < lines.length && !lines[j].trim()) j++;
        if (j >= lines.length) break;
        raw = lines[j];
      }
      if (p.stop !== null) {
        const cut = indexOfWord(raw, p.stop);
        if (cut >= 0) raw = raw.slice(0, cut);
      }
      const value = raw.trim();
      if (!value) continue;
      const values = this.splitRe ? value.split(this.splitRe).map((s) => s.trim()).filter(Boolean) : [value];
      if (p.pick === 'first') return values;
      found.push(...values);
    }
    return found.length ? found : null;
  }

  body(): string {
    const { p } = this;
    const out: string[] = p.mode === 'line-head' ? ['const lines = text.split("\\n");'] : [`const anchor = ${lit(p.anchor)};`, 'const lines = text.split("\\n");'];
    if (p.pick === 'all') out.push('const found = [];');
    out.push('for (let i = 0; i < lines.length; i++) {');
    if (p.mode === 'line-head') {
      out.push(`  if (indexOfWord(lines[i], ${lit(p.stop)}) < 0) continue;`, '  let raw = lines[i];');
    } else if (p.mode === 'same-line') {
      out.push('  const line = lines[i];', '  const at = indexOfWord(line, anchor);');
      out.push(p.atLineStart ? '  if (at < 0 || line.slice(0, at).trim()) continue;' : '  if (at < 0) continue;');
      out.push('  let raw = line.slice(at + anchor.length);');
    } else {
      out.push(
        '  if (lines[i].trim() !== anchor) continue;',
        '  let j = i + 1;',
        '  while (j < lines.length && !lines[j].trim()) j++;',
        '  if (j >= lines.length) break;',
        '  let raw = lines[j];',
      );
    }
    if (p.stop !== null) out.push(`  const cut = indexOfWord(raw, ${lit(p.stop)});`, '  if (cut >= 0) raw = raw.slice(0, cut);');
    out.push('  const value = raw.trim();', '  if (!value) continue;');
    const values = p.split ? `value.split(/${p.split}/).map((s) => s.trim()).filter(Boolean)` : '[value]';
    if (p.pick === 'first') out.push(`  return ${p.split ? values : 'value'};`, '}', 'return null;');
    else out.push(`  found.push(...${values});`, '}', 'return found.length ? found : null;');
    return out.join('\n');
  }
}

/** Delimiters that could end the value inside its line, read from what follows it. */
export function stopsAfter(suffix: string): (string | null)[] {
  if (!suffix.trim()) return [null];
  const stops = new Set<string>();
  const punct = /^\s*[^\s\w]+/.exec(suffix);
  if (punct) stops.add(punct[0]);
  const word = /^\s*\S+/.exec(suffix);
  if (word) stops.add(word[0]);
  const twoWords = /^\s*\S+\s+\S+/.exec(suffix);
  if (twoWords) stops.add(twoWords[0]);
  return [...stops].filter((s) => s.trim().length <= 20);
}

/** Anchors for the text before the value on its line: the whole prefix (line-start anchored) and its last words. */
function anchorsBefore(prefix: string): { anchor: string; atLineStart: boolean }[] {
  const trimmed = prefix.trim();
  if (!trimmed) return [];
  const out: { anchor: string; atLineStart: boolean }[] = [];
  if (trimmed.length <= MAX_ANCHOR) out.push({ anchor: trimmed, atLineStart: true }, { anchor: trimmed, atLineStart: false });
  const words = trimmed.split(/\s+/);
  for (let k = 1; k <= Math.min(3, words.length); k++) {
    // Re-slice from the original so inner spacing stays as the page has it.
    const wanted = words.slice(-k).join(' ');
    const at = trimmed.replace(/\s+/g, ' ').lastIndexOf(wanted);
    const anchor = trimmed.replace(/\s+/g, ' ').slice(at);
    if (anchor.length <= MAX_ANCHOR && trimmed.includes(anchor)) out.push({ anchor, atLineStart: false });
  }
  return out;
}

export interface Span {
  line: number;
  start: number;
  end: number;
}

/** The spans a labelled example's values occupy: each value alone, and all values together on one line. */
export function valueSpans(lines: string[], values: string[]): Span[] {
  const spans: Span[] = [];
  for (const v of values) spans.push(...findInLines(lines, v));
  if (values.length > 1) {
    const byLine = new Map<number, Span[]>();
    for (const v of values) {
      for (const o of findInLines(lines, v)) {
        const list = byLine.get(o.line) ?? [];
        list.push(o);
        byLine.set(o.line, list);
      }
    }
    for (const [line, list] of byLine) {
      const distinct = new Set(list.map((o) => lines[line].slice(o.start, o.end).toLowerCase()));
      if (distinct.size < values.length) continue;
      spans.push({ line, start: Math.min(...list.map((o) => o.start)), end: Math.max(...list.map((o) => o.end)) });
    }
  }
  return spans;
}

/** Separators between several values of one document that share a line (", ", " and "). */
export function separatorsBetween(lines: string[], values: string[]): string[] {
  if (values.length < 2) return [];
  const seps: string[] = [];
  for (let k = 0; k + 1 < values.length; k++) {
    const re = new RegExp(`${values[k].trim().split(/\s+/).map(escapeRegExp).join('\\s+')}(.{1,6}?)${values[k + 1].trim().split(/\s+/).map(escapeRegExp).join('\\s+')}`, 'i');
    for (const line of lines) {
      const m = re.exec(line);
      if (m && m[1].trim() && !/\w{5,}/.test(m[1])) {
        seps.push(m[1].trim());
        break;
      }
    }
  }
  return seps;
}

export function proposeTextAnchors(doc: PreparedDocument, values: string[], split: string | null, multiValued: boolean): TextAnchorRule[] {
  const lines = doc.lines();
  const rules = new Map<string, TextAnchorRule>();
  const add = (p: TextAnchorParams) => {
    const r = new TextAnchorRule(p);
    rules.set(r.key, r);
  };
  const picks: ('first' | 'all')[] = multiValued ? ['first', 'all'] : ['first'];
  const splits = split ? [null, split] : [null];
  for (const span of valueSpans(lines, values)) {
    const line = lines[span.line];
    const stops = stopsAfter(line.slice(span.end));
    const prefix = line.slice(0, span.start);
    for (const pick of picks) {
      for (const sp of splits) {
        for (const stop of stops) {
          for (const a of anchorsBefore(prefix)) add({ mode: 'same-line', ...a, stop, pick, split: sp });
          if (!prefix.trim() && stop !== null && stop.trim().length >= 2) add({ mode: 'line-head', anchor: '', atLineStart: true, stop, pick, split: sp });
          if (!prefix.trim()) {
            let j = span.line - 1;
            while (j >= 0 && !lines[j].trim()) j--;
            const label = j >= 0 ? lines[j].trim() : '';
            if (label && label.length <= MAX_LABEL_LINE) add({ mode: 'next-line', anchor: label, atLineStart: false, stop, pick, split: sp });
          }
        }
      }
    }
  }
  return [...rules.values()];
}

/** The labels next to the values in the text ("Vendor:" before the value, or the line above it). */
export function labelsNear(doc: PreparedDocument, values: string[]): string[] {
  const lines = doc.lines();
  const out = new Set<string>();
  for (const span of valueSpans(lines, values)) {
    // Cell separators of the text rendering (" | ") and trailing colons are not part of a label.
    const prefix = lines[span.line].slice(0, span.start).replace(/[\s|:\-–]+$/, '').trim();
    if (prefix && prefix.length <= 40) out.add(prefix);
    if (!prefix) {
      let j = span.line - 1;
      while (j >= 0 && !lines[j].trim()) j--;
      if (j >= 0 && lines[j].trim().length <= 40) out.add(lines[j].trim());
    }
  }
  return [...out];
}
