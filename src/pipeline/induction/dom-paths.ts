/**
 * DOM rules over the contract's `doc` helpers: CSS paths built from where the values sit (tag, class and id
 * of the element and of its nearest identifiable ancestors, link patterns such as a[href*="author="]),
 * generalized to the first, the n-th or every match, or to every match inside the first container; and
 * label-anchored rules, doc.textAfter("Publisher"), for "the cell after the cell that says Publisher".
 */
import type { DocNode } from '../../sandbox/contract.js';
import { lit } from './emit.js';
import { collapse, sameText } from './occurrences.js';
import type { PreparedDocument, Rule } from './types.js';

export type DomPick = { kind: 'first' } | { kind: 'all' } | { kind: 'nth'; n: number };

export interface DomParams {
  kind: 'select' | 'within' | 'label';
  /** select: the path; within: the container (its first match); label: the label text. */
  selector: string;
  /** within: the path inside the container. */
  inner?: string;
  pick: DomPick;
}

const IDENT = /^-?[A-Za-z_][A-Za-z0-9_-]*$/;
const MAX_ANCESTORS = 4;
const MAX_NTH = 5;

const ordinal = (n: number) => `${n + 1}${n === 0 ? 'st' : n === 1 ? 'nd' : n === 2 ? 'rd' : 'th'}`;

export class DomRule implements Rule {
  readonly key: string;
  readonly generator;
  readonly complexity: number;

  constructor(readonly p: DomParams) {
    this.generator = p.kind === 'label' ? ('label-anchor' as const) : ('dom-path' as const);
    this.key = 'dom:' + JSON.stringify([p.kind, p.selector, p.inner ?? null, p.pick]);
    const pathLength = (p.selector + ' ' + (p.inner ?? '')).split(/\s+/).filter(Boolean).length;
    this.complexity = (p.kind === 'label' ? 1.2 : 1) + pathLength * 0.1 + (p.pick.kind === 'nth' ? 0.5 : 0) + (p.kind === 'within' ? 0.3 : 0);
  }

  get description(): string {
    const { p } = this;
    if (p.kind === 'label') return `The text right after the label ${lit(p.selector)} (doc.textAfter: the rest of its line or the next cell).`;
    const where = p.kind === 'within' ? `${lit(p.inner)} inside the first ${lit(p.selector)}` : lit(p.selector);
    if (p.pick.kind === 'all') return `The text of every element matching ${where}.`;
    if (p.pick.kind === 'nth') return `The text of the ${ordinal(p.pick.n)} element matching ${where}.`;
    return `The text of the first element matching ${where}.`;
  }

  apply(doc: PreparedDocument): string[] | null {
    const { p } = this;
    const d = doc.doc();
    if (p.kind === 'label') {
      const v = d.textAfter(p.selector);
      return v && v.trim() ? [v.trim()] : null;
    }
    let els: readonly DocNode[];
    if (p.kind === 'within') {
      const box = d.selectOne(p.selector);
      if (!box) return null;
      els = box.select(p.inner!);
    } else els = d.select(p.selector);
    const texts = (list: readonly DocNode[]) => list.map((el) => el.text.trim()).filter(Boolean);
    if (p.pick.kind === 'all') {
      const values = texts(els);
      return values.length ? values : null;
    }
    const el = els[p.pick.kind === 'nth' ? p.pick.n : 0];
    const v = el ? el.text.trim() : '';
    return v ? [v] : null;
  }

  body(): string {
    const { p } = this;
    if (p.kind === 'label') return `return doc.textAfter(${lit(p.selector)});`;
    const lines: string[] = [];
    let list: string;
    if (p.kind === 'within') {
      lines.push(`const box = doc.selectOne(${lit(p.selector)});`, 'if (!box) return null;');
      list = `box.select(${lit(p.inner)})`;
    } else list = `doc.select(${lit(p.selector)})`;
    if (p.pick.kind === 'all') {
      lines.push(`const values = ${list}.map((el) => el.text.trim()).filter(Boolean);`, 'return values.length ? values : null;');
    } else {
      lines.push(`const el = ${list}[${p.pick.kind === 'nth' ? p.pick.n : 0}];`, 'return el ? el.text : null;');
    }
    return lines.join('\n');
  }
}

/** Simple selectors naming one element: its tag, tag.class for each class, tag#id. */
function describe(el: DocNode, withBareTag: boolean): string[] {
  const out: string[] = withBareTag ? [el.tag] : [];
  const id = el.attr('id');
  if (id && IDENT.test(id) && !/\d{3,}/.test(id)) out.push(`${el.tag}#${id}`);
  for (const cls of (el.attr('class') ?? '').split(/\s+/)) if (cls && IDENT.test(cls) && !/\d{3,}/.test(cls)) out.push(`${el.tag}.${cls}`);
  return out;
}

/** Parameters of a link that name what it points at (href "...?author=Paul%20Kent" gives a[href*="author="]). */
function linkPatterns(el: DocNode): string[] {
  if (el.tag !== 'a') return [];
  const href = el.attr('href') ?? '';
  const q = href.indexOf('?');
  if (q < 0) return [];
  return href
    .slice(q + 1)
    .split(/&(?:amp;)?/)
    .map((kv) => kv.split('=')[0])
    .filter((k) => /^[A-Za-z_][A-Za-z0-9_]{1,30}$/.test(k))
    .map((k) => `a[href*=${JSON.stringify(k + '=')}]`);
}

export function paths(el: DocNode): string[] {
  const own = describe(el, true);
  const out = new Set<string>([...own, ...linkPatterns(el)]);
  let anc = el.parent;
  for (let depth = 1; anc && depth <= MAX_ANCESTORS; depth++, anc = anc.parent) {
    for (const a of describe(anc, false)) {
      for (const e of own.slice(0, 2)) out.add(`${a} ${e}`);
      if (depth === 1) out.add(`${a} > ${el.tag}`);
    }
  }
  return [...out];
}

/** The elements whose whole text is the value (the innermost ones). */
function elementsFor(doc: PreparedDocument, value: string): readonly DocNode[] {
  return doc
    .doc()
    .findText(collapse(value))
    .filter((el) => sameText(el.text, value))
    .slice(0, 20);
}

export function proposeDomRules(doc: PreparedDocument, values: string[], textAnchors: string[], multiValued: boolean): DomRule[] {
  if (!doc.html) return [];
  const d = doc.doc();
  const rules = new Map<string, DomRule>();
  const add = (p: DomParams) => {
    const r = new DomRule(p);
    rules.set(r.key, r);
  };
  const perValue = values.map((v) => elementsFor(doc, v));
  for (const els of perValue) {
    for (const el of els) {
      for (const selector of paths(el)) {
        const matches = d.select(selector);
        const n = matches.indexOf(el);
        if (n < 0) continue;
        add({ kind: 'select', selector, pick: { kind: 'first' } });
        if (n > 0 && n < MAX_NTH) add({ kind: 'select', selector, pick: { kind: 'nth', n } });
        if (multiValued) add({ kind: 'select', selector, pick: { kind: 'all' } });
      }
    }
  }
  // Several values in one container (every author link inside the first "product-author" div).
  if (multiValued && values.length > 1 && perValue.every((els) => els.length)) {
    const first = perValue[0][0];
    for (let anc = first.parent, depth = 1; anc && depth <= MAX_ANCESTORS; depth++, anc = anc.parent) {
      const box = anc;
      if (!perValue.every((els) => els.some((el) => isInside(el, box)))) continue;
      for (const c of describe(box, false)) if (d.selectOne(c) === box) add({ kind: 'within', selector: c, inner: first.tag, pick: { kind: 'all' } });
      break;
    }
  }
  for (const label of textAnchors) {
    const clean = label.replace(/\s*:$/, '').trim();
    if (clean.length >= 2 && clean.length <= 40) add({ kind: 'label', selector: clean, pick: { kind: 'first' } });
  }
  return [...rules.values()];
}

function isInside(el: DocNode, box: DocNode): boolean {
  for (let n: DocNode | null = el; n; n = n.parent) if (n === box) return true;
  return false;
}
