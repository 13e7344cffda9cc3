// Bundled (with htmlparser2 and css-select) into one script that runs inside the worker's DOM realm:
// a vm context with frozen intrinsics and no host objects. It parses HTML lazily and hands out frozen
// facades, so every untrusted function sees the same read-only document and none can change it for another.
import { parseDocument } from 'htmlparser2';
import { selectAll } from 'css-select';

const BLOCK = new Set([
  'address', 'article', 'aside', 'blockquote', 'body', 'caption', 'dd', 'div', 'dl', 'dt', 'fieldset', 'figcaption',
  'figure', 'footer', 'form', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'header', 'hr', 'html', 'li', 'main', 'nav', 'ol',
  'p', 'pre', 'section', 'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'ul', 'option', 'select',
]);
const SKIP = new Set(['script', 'style', 'noscript', 'template', 'head']);
const isElement = (n) => n.type === 'tag' || n.type === 'script' || n.type === 'style';
const collapse = (s) => s.replace(/\s+/g, ' ').trim();
const freeze = Object.freeze;
// Freezes an object, its methods and its accessors, so no function can hang state on a shared helper.
const freezeDeep = (o) => {
  for (const key of Reflect.ownKeys(o)) {
    const d = Reflect.getOwnPropertyDescriptor(o, key);
    for (const part of [d.value, d.get, d.set]) if (typeof part === 'function') freeze(part);
  }
  return freeze(o);
};
const EMPTY = freeze([]);

function rawText(node, out) {
  if (node.type === 'text') { out.push(node.data); return; }
  if (!isElement(node) && node.type !== 'root') return;
  if (isElement(node)) {
    if (SKIP.has(node.name)) return;
    if (node.name === 'br') { out.push(' '); return; }
  }
  const block = isElement(node) && BLOCK.has(node.name);
  if (block) out.push(' ');
  for (const child of node.children) rawText(child, out);
  if (block) out.push(' ');
}

// The helpers of one document; built on first use, so functions that never touch `doc` cost nothing.
function buildHelpers(html) {
  let root = null;
  let docs = null;
  const facades = new WeakMap();
  const texts = new WeakMap();
  const ensure = () => {
    if (root === null) root = parseDocument(html, { withStartIndices: true, withEndIndices: true });
    return root;
  };
  const textOf = (node) => {
    let t = texts.get(node);
    if (t === undefined) {
      const out = [];
      rawText(node, out);
      t = collapse(out.join(''));
      texts.set(node, t);
    }
    return t;
  };
  const wrap = (node) => {
    if (!node || !isElement(node)) return null;
    let f = facades.get(node);
    if (!f) {
      f = Object.create(NodeProto);
      nodes.set(f, [node, docs]);
      freeze(f);
      facades.set(node, f);
    }
    return f;
  };
  const wrapAll = (list) => freeze(list.map(wrap));
  const nextElement = (n, dir) => {
    for (let s = n[dir]; s; s = s[dir]) if (isElement(s)) return s;
    return null;
  };
  const selectIn = (selector, scope) => wrapAll(selectAll(String(selector), scope));
  const elements = () => {
    const out = [];
    const walk = (n) => {
      for (const c of n.children ?? []) if (isElement(c) && !SKIP.has(c.name)) { out.push(c); walk(c); }
    };
    walk(ensure());
    return out;
  };
  const matcher = (pattern, exact) => {
    if (Object.prototype.toString.call(pattern) === '[object RegExp]') {
      const re = new RegExp(pattern.source, String(pattern.flags).replace(/[gy]/g, ''));
      return (t) => re.test(t);
    }
    const norm = (s) => collapse(String(s)).toLowerCase().replace(/\s*:$/, '');
    const want = norm(pattern);
    return exact ? (t) => norm(t) === want : (t) => t.toLowerCase().includes(want);
  };
  const innermost = (test) => {
    const hits = elements().filter((el) => test(textOf(el)));
    const hitSet = new Set(hits);
    return hits.filter((el) => !el.children.some((c) => hitSet.has(c) || (isElement(c) && hasHitBelow(c, hitSet))));
  };
  const hasHitBelow = (n, hitSet) => n.children.some((c) => hitSet.has(c) || (isElement(c) && hasHitBelow(c, hitSet)));
  const clean = (s) => collapse(s).replace(/^[:\-–\s]+/, '').trim();
  const following = (node) => {
    let out = '';
    for (let s = node.next; s; s = s.next) {
      if (s.type === 'text') { out += s.data; continue; }
      if (!isElement(s) || SKIP.has(s.name)) continue;
      if (s.name === 'br' || BLOCK.has(s.name)) {
        if (clean(out)) break;
        if (s.name === 'br') continue;
        const t = clean(textOf(s));
        if (t) return t;
        continue;
      }
      out += ' ' + textOf(s) + ' ';
    }
    return clean(out) || null;
  };

  // valueAfter: the label as whole words (a string, case-insensitive, its trailing ':' optional) or a RegExp.
  const labelPattern = (label) => {
    if (Object.prototype.toString.call(label) === '[object RegExp]') return new RegExp(label.source, String(label.flags).replace(/[gy]/g, ''));
    const words = collapse(String(label)).replace(/\s*:$/, '').split(' ').filter(Boolean);
    if (!words.length) return null;
    const body = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('\\s+');
    const open = /^[\p{L}\p{N}_]/u.test(words[0]) ? '(?<![\\p{L}\\p{N}_])' : '';
    const close = /[\p{L}\p{N}_]$/u.test(words[words.length - 1]) ? '(?![\\p{L}\\p{N}_])' : '';
    return new RegExp(`${open}${body}${close}\\s*:?`, 'iu');
  };
  // The value ends at the next label of the same line ("Height: 6'10' Weight: 278" -> "6'10'").
  const NEXT_LABEL = /\s(?:\p{Lu}[\p{L}.#-]*\s){0,2}\p{Lu}[\p{L}.#-]*:(?=\s|$)/u;
  const trimValue = (s) => collapse(s).replace(/^[\s:|\-\u2013\u2014]+/u, '').replace(/[\s:;,|]+$/u, '');
  const afterIn = (t, re) => {
    const m = re.exec(t);
    if (!m) return null;
    let rest = t.slice(m.index + m[0].length);
    const next = NEXT_LABEL.exec(rest);
    if (next) rest = rest.slice(0, next.index);
    return trimValue(rest) || null;
  };
  const valueAfter = (label, text) => {
    const re = labelPattern(label);
    if (!re) return null;
    if (html) {
      // A label alone in its element ("<td>Location:</td><td>Boston</td>") reads on after it, a few levels up at most.
      for (const hit of innermost((t) => re.test(t))) {
        let node = hit;
        for (let depth = 0; node && isElement(node) && depth < 3; depth++, node = node.parent) {
          const v = afterIn(textOf(node), re) ?? following(node);
          if (v) return v;
        }
      }
      return null;
    }
    for (const line of String(text).split('\n')) {
      const v = afterIn(line, re);
      if (v) return v;
    }
    return null;
  };

  const api = {
    valueAfter,
    select: (selector) => (html ? selectIn(selector, ensure()) : EMPTY),
    selectOne: (selector) => (html ? selectIn(selector, ensure())[0] ?? null : null),
    textOf: (selector) => {
      if (!html) return null;
      const first = selectIn(selector, ensure())[0];
      return first ? first.text : null;
    },
    textAfter: (label) => {
      if (!html) return null;
      const test = matcher(label, true);
      for (const hit of innermost(test)) {
        for (let node = hit; node && isElement(node); node = node.parent) {
          if (node !== hit && !test(textOf(node))) break;
          const value = following(node);
          if (value) return value;
        }
      }
      return null;
    },
    findText: (pattern) => (html ? wrapAll(innermost(matcher(pattern, false))) : EMPTY),
  };
  docs = { wrap, textOf, nextElement, selectIn, html: () => html };
  return api;
}

// Facade -> [parsed node, its document's helpers]; not reachable from user code.
const nodes = new WeakMap();
const facadeDoc = (f) => {
  const entry = nodes.get(f);
  if (!entry) throw new TypeError('not a document element');
  return entry;
};
const NodeProto = Object.create(null);
Object.defineProperties(NodeProto, {
  tag: { get() { return facadeDoc(this)[0].name; } },
  text: { get() { const [n, d] = facadeDoc(this); return d.textOf(n); } },
  html: {
    get() {
      const [n, d] = facadeDoc(this);
      return n.startIndex == null || n.endIndex == null ? '' : d.html().slice(n.startIndex, n.endIndex + 1);
    },
  },
  parent: { get() { const [n, d] = facadeDoc(this); return d.wrap(n.parent); } },
  children: { get() { const [n, d] = facadeDoc(this); return freeze(n.children.filter(isElement).map(d.wrap)); } },
  next: { get() { const [n, d] = facadeDoc(this); return d.wrap(d.nextElement(n, 'next')); } },
  prev: { get() { const [n, d] = facadeDoc(this); return d.wrap(d.nextElement(n, 'prev')); } },
  attr: {
    value(name) {
      const [n] = facadeDoc(this);
      const v = n.attribs?.[String(name).toLowerCase()];
      return typeof v === 'string' ? v : null;
    },
  },
  select: { value(selector) { const [n, d] = facadeDoc(this); return d.selectIn(selector, n); } },
});
freezeDeep(NodeProto);

// Document facade -> its state; the facade itself holds only frozen primitives and inherits frozen methods.
const docState = new WeakMap();
const helpersOf = (d) => {
  const state = docState.get(d);
  if (!state) throw new TypeError('not a document');
  if (state.api === null) state.api = buildHelpers(state.html);
  return state.api;
};
const DocProto = Object.create(null);
for (const name of ['select', 'selectOne', 'textOf', 'textAfter', 'findText']) {
  Object.defineProperty(DocProto, name, { value: { [name](arg) { return helpersOf(this)[name](arg); } }[name] });
}
Object.defineProperty(DocProto, 'valueAfter', { value: { valueAfter(label) { return helpersOf(this).valueAfter(label, this.text); } }.valueAfter });
freezeDeep(DocProto);

globalThis.__evaporateMakeDoc = (id, text, html) => {
  const doc = Object.create(DocProto, {
    id: { value: String(id), enumerable: true },
    text: { value: String(text), enumerable: true },
    html: { value: String(html ?? ''), enumerable: true },
  });
  docState.set(doc, { html: String(html ?? ''), api: null });
  return freeze(doc);
};
