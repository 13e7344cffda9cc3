/**
 * Regular expressions generalized from the values' shapes: an ISBN-13 becomes 97[89] and ten digits, a
 * year four digits, a price a currency sign and digits; any other value with digits becomes its digit and
 * letter runs. Each shape is tried bare (first match in the text) and behind the literal that precedes the
 * value on its line ("ISBN-13:"), which keeps a shape that recurs on the page (other ISBNs, other years) on
 * the right one.
 */
import { escapeRegExp, lit, weakAnchorPenalty } from './emit.js';
import { valueSpans } from './text-anchors.js';
import type { PreparedDocument, Rule } from './types.js';

const KNOWN_SHAPES: [RegExp, string, string][] = [
  [/^97[89]\d{10}$/, '97[89]\\d{10}', 'an ISBN-13'],
  [/^97[89](?:[- ]\d+){4}$/, '97[89](?:[- ]\\d+){4}', 'a hyphenated ISBN-13'],
  [/^\d{9}[\dXx]$/, '\\d{9}[\\dXx]', 'an ISBN-10'],
  [/^(?:1[5-9]|20)\d{2}$/, '(?:1[5-9]|20)\\d{2}', 'a year'],
  [/^\d{4}-\d{2}-\d{2}$/, '\\d{4}-\\d{2}-\\d{2}', 'an ISO date'],
  [/^\d{1,2}\/\d{1,2}\/\d{2,4}$/, '\\d{1,2}\\/\\d{1,2}\\/\\d{2,4}', 'a numeric date'],
  [/^[A-Z][a-z]{2,8}\.? \d{1,2},? \d{4}$/, '[A-Z][a-z]{2,8}\\.? \\d{1,2},? \\d{4}', 'a date like "March 3, 2008"'],
  [/^[A-Z][a-z]{2,8}\.? \d{4}$/, '[A-Z][a-z]{2,8}\\.? \\d{4}', 'a month and year'],
  [/^[$€£]\s?\d[\d,]*(?:\.\d{2})?$/, '[$€£]\\s?\\d[\\d,]*(?:\\.\\d{2})?', 'a price'],
];

/** Known shapes first; otherwise digit runs and letter runs of any length (6'9' and 6'10' share one shape), so "Vol. 12" generalizes to "Vol. \d+". */
export function shapesOf(value: string): { pattern: string; name: string }[] {
  const v = value.trim();
  const out = KNOWN_SHAPES.filter(([re]) => re.test(v)).map(([, pattern, name]) => ({ pattern, name }));
  if (!/\d/.test(v) || v.length > 40) return out;
  const generic = v
    .split(/(\d+|[A-Za-z]+|\s+)/)
    .filter(Boolean)
    .map((part) => (/^\d+$/.test(part) ? '\\d+' : /^\s+$/.test(part) ? '\\s+' : /^[A-Za-z]+$/.test(part) ? '[A-Za-z]+' : escapeRegExp(part)))
    .join('');
  if (!out.some((s) => s.pattern === generic)) out.push({ pattern: generic, name: `match of /${generic}/` });
  return out;
}

export class ValueShapeRule implements Rule {
  readonly generator = 'value-shape' as const;
  readonly key: string;
  readonly complexity: number;
  private readonly re: RegExp;

  constructor(
    readonly shape: { pattern: string; name: string },
    readonly anchor: string | null,
  ) {
    this.key = 'shape:' + JSON.stringify([shape.pattern, anchor]);
    this.complexity = 1.5 + (anchor ? anchor.length / 100 + weakAnchorPenalty(anchor) : 0.5);
    this.re = new RegExp(this.source());
  }

  private source(): string {
    // An anchor that starts with a letter must start a word ("Weight:", not "Bodyweight:").
    const prefix = this.anchor ? `${/^\w/.test(this.anchor) ? '(?<!\\w)' : ''}${escapeRegExp(this.anchor)}[ \\t]*` : '(?<![\\w-])';
    return `${prefix}(${this.shape.pattern})(?![\\w-])`;
  }

  get description(): string {
    return this.anchor
      ? `The first ${this.shape.name} right after ${lit(this.anchor)}.`
      : `The first ${this.shape.name} anywhere in the text.`;
  }

  apply(doc: PreparedDocument): string[] | null {
    const m = this.re.exec(doc.text);
    return m ? [m[1]] : null;
  }

  body(): string {
    return `const m = /${this.source()}/.exec(text);\nreturn m ? m[1] : null;`;
  }
}

export function proposeValueShapes(doc: PreparedDocument, values: string[]): ValueShapeRule[] {
  if (values.length !== 1) return [];
  const shapes = shapesOf(values[0]);
  if (!shapes.length) return [];
  const rules = new Map<string, ValueShapeRule>();
  const lines = doc.lines();
  const anchors = new Set<string | null>([null]);
  for (const span of valueSpans(lines, values)) {
    const prefix = lines[span.line].slice(0, span.start).trimEnd();
    const words = prefix.split(/\s+/).filter(Boolean);
    for (let k = 1; k <= Math.min(2, words.length); k++) {
      const anchor = words.slice(-k).join(' ');
      if (anchor.length <= 40 && prefix.endsWith(anchor)) anchors.add(anchor);
    }
  }
  for (const shape of shapes) {
    for (const anchor of anchors) {
      const r = new ValueShapeRule(shape, anchor);
      rules.set(r.key, r);
    }
  }
  return [...rules.values()];
}
