/**
 * DOM rules for a value that is only part of an element's text: the title in
 * <h1>Einstein Bros Bagels <span>Restaurant Review</span></h1>, the height in "Height: 6'10' Weight: 278".
 * Two ways to cut it out, both learned from where the labelled value sits in the element:
 * - own: the element's text without its child elements' text (the span that adds " (Paperback)");
 * - between: the part after a word-bounded anchor and before a word-bounded delimiter, read from the text on
 *   either side of the value inside the element.
 */
import type { DocNode } from '../../sandbox/contract.js';
import { paths } from './dom-paths.js';
import { indexOfWord, lit, weakAnchorPenalty } from './emit.js';
import { collapse, findInLines, sameText } from './occurrences.js';
import { stopsAfter } from './text-anchors.js';
import type { PreparedDocument, Rule } from './types.js';

export type PartParams = {
  selector: string;
  /** Which match of the selector: 0 for the first. */
  n: number;
} & ({ part: 'own' } | { part: 'between'; after: string | null; before: string | null });

const MAX_NTH = 5;
const MAX_ELEMENT_TEXT = 300;
const MAX_ELEMENTS = 6;

/** The element's text with each child element's text taken out (the last occurrence, as children follow the own text). */
function ownText(el: DocNode): string {
  let t = el.text;
  for (const c of el.children) {
    if (!c.text) continue;
    const at = t.lastIndexOf(c.text);
    if (at >= 0) t = t.slice(0, at) + ' ' + t.slice(at + c.text.length);
  }
  return collapse(t);
}

function between(text: string, after: string | null, before: string | null): string | null {
  let t = text;
  if (after !== null) {
    const at = indexOfWord(t, after);
    if (at < 0) return null;
    t = t.slice(at + after.length);
  }
  if (before !== null) {
    const cut = indexOfWord(t, before);
    if (cut >= 0) t = t.slice(0, cut);
  }
  return collapse(t) || null;
}

export class PartialTextRule implements Rule {
  readonly generator = 'dom-path' as const;
  readonly key: string;
  readonly complexity: number;

  constructor(readonly p: PartParams) {
    this.key = 'part:' + JSON.stringify(p);
    const pathLength = p.selector.split(/\s+/).filter(Boolean).length;
    const cuts = p.part === 'own' ? 0.2 : (p.after !== null ? 0.3 + weakAnchorPenalty(p.after) : 0) + (p.before !== null ? 0.3 : 0);
    // A position among like elements ("the 3rd h5") shifts between pages more than a whole-element path does.
    this.complexity = 1.1 + pathLength * 0.1 + (p.n > 0 ? 1 : 0) + cuts;
  }

  get description(): string {
    const { p } = this;
    const which = p.n === 0 ? 'first' : `element number ${p.n + 1} of the`;
    const el = `the ${which} element matching ${lit(p.selector)}`;
    if (p.part === 'own') return `The text of ${el}, without the text of its child elements.`;
    const from = p.after !== null ? `after ${lit(p.after)}` : 'from its start';
    const to = p.before !== null ? `up to ${lit(p.before)} or its end` : 'to its end';
    return `The part of the text of ${el} ${from}, ${to}.`;
  }

  apply(doc: PreparedDocument): string[] | null {
    const { p } = this;
    const el = doc.doc().select(p.selector)[p.n];
    if (!el) return null;
    const v = p.part === 'own' ? ownText(el) : between(el.text, p.after, p.before);
    return v ? [v] : null;
  }

  body(): string {
    const { p } = this;
    const lines = [`const el = doc.select(${lit(p.selector)})[${p.n}];`, 'if (!el) return null;', 'let t = el.text;'];
    if (p.part === 'own') {
      lines.push(
        'for (const c of el.children) {',
        '  if (!c.text) continue;',
        '  const at = t.lastIndexOf(c.text);',
        "  if (at >= 0) t = t.slice(0, at) + ' ' + t.slice(at + c.text.length);",
        '}',
      );
    } else {
      if (p.after !== null) {
        lines.push(`const at = indexOfWord(t, ${lit(p.after)});`, 'if (at < 0) return null;', `t = t.slice(at + ${lit(p.after.length)});`);
      }
      if (p.before !== null) lines.push(`const cut = indexOfWord(t, ${lit(p.before)});`, 'if (cut >= 0) t = t.slice(0, cut);');
    }
    lines.push("const v = t.replace(/\\s+/g, ' ').trim();", 'return v || null;');
    return lines.join('\n');
  }
}

/** The last one or two words before the value inside the element (the label), or nothing when it opens the text. */
function anchorsIn(prefix: string): (string | null)[] {
  const trimmed = collapse(prefix);
  if (!trimmed) return [null];
  const words = trimmed.split(' ');
  const out = new Set<string>();
  for (let k = 1; k <= Math.min(2, words.length); k++) {
    const a = words.slice(-k).join(' ');
    if (a.length <= 40) out.add(a);
  }
  return [...out];
}

/** Rules for a single value that sits inside, but is not the whole of, an element's text. */
export function proposePartialText(doc: PreparedDocument, values: string[]): PartialTextRule[] {
  if (!doc.html || values.length !== 1) return [];
  const value = values[0];
  const d = doc.doc();
  const rules = new Map<string, PartialTextRule>();
  const add = (p: PartParams) => {
    const r = new PartialTextRule(p);
    rules.set(r.key, r);
  };
  const elements = d
    .findText(collapse(value))
    .filter((el) => el.text.length <= MAX_ELEMENT_TEXT && !sameText(el.text, value))
    .slice(0, MAX_ELEMENTS);
  for (const el of elements) {
    const own = sameText(ownText(el), value);
    const [at] = findInLines([el.text], value);
    if (!own && !at) continue;
    const cuts: PartParams[] = [];
    const base = { selector: '', n: 0 };
    if (own) cuts.push({ ...base, part: 'own' });
    if (at) {
      for (const after of anchorsIn(el.text.slice(0, at.start))) {
        for (const before of stopsAfter(el.text.slice(at.end))) if (after !== null || before !== null) cuts.push({ ...base, part: 'between', after, before });
      }
    }
    for (const selector of paths(el)) {
      const n = d.select(selector).indexOf(el);
      if (n < 0 || n >= MAX_NTH) continue;
      for (const cut of cuts) add({ ...cut, selector, n });
    }
  }
  return [...rules.values()];
}
