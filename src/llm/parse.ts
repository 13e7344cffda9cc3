/**
 * The one place model output is parsed. Models wrap answers in prose, markdown fences, bullets and
 * bold; emit trailing commas, smart quotes, single quotes, Python literals and comments in "JSON"; and
 * get cut off at max_tokens. Each function here finds the answer in that noise or says it found none.
 */

const FENCE = /(^|\n)[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n([\s\S]*?)(?:\n[ \t]*\2[ \t]*(?=\n|$)|$)/g;

export interface CodeBlock {
  lang: string;
  code: string;
}

/** Every fenced block, in order; an unterminated last fence (output cut off) yields what is there. */
export function codeBlocks(text: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  for (const m of normalizeNewlines(text).matchAll(FENCE)) {
    blocks.push({ lang: (m[3] ?? '').toLowerCase(), code: m[4]!.replace(/\s+$/, '') });
  }
  return blocks;
}

const JS_LANGS = new Set(['', 'js', 'javascript', 'jsx', 'ts', 'typescript', 'node', 'mjs', 'es6']);

/**
 * JavaScript function source from a model answer: the fenced JS block that defines a function
 * (preferring one named `name`), else a function found in bare prose by brace matching.
 */
export function extractFunctionSource(text: string, name?: string): string | undefined {
  const clean = normalizeNewlines(text);
  const blocks = codeBlocks(clean).filter((b) => JS_LANGS.has(b.lang));
  const defines = (code: string) => (name ? definesFunction(code, name) : /\bfunction\b|=>/.test(code));
  const named = blocks.find((b) => defines(b.code));
  if (named) return asScript(stripTrailingProse(named.code));
  if (!name) {
    const any = blocks.find((b) => /\bfunction\b|=>/.test(b.code));
    if (any) return asScript(any.code);
  } else {
    // Asked for `extract`, got `function extractTitle(...)`: keep it and add the name that was asked for.
    for (const b of blocks) {
      const names = [...b.code.matchAll(/^\s*(?:export\s+(?:default\s+)?)?(?:async\s+)?function\s+([\w$]+)\s*\(/gm)].map((m) => m[1]!);
      if (names.length === 1) return `${asScript(stripTrailingProse(b.code))}\nvar ${name} = ${names[0]};`;
    }
  }
  // No fences: find the function in the prose and take it up to its matching brace.
  const start = name
    ? clean.search(new RegExp(`(?:async\\s+)?function\\s+${escapeRegExp(name)}\\s*\\(|(?:const|let|var)\\s+${escapeRegExp(name)}\\s*=`))
    : clean.search(/(?:async\s+)?function\s*[\w$]*\s*\(/);
  if (start < 0) return undefined;
  const open = clean.indexOf('{', start);
  if (open < 0) return undefined;
  const end = matchingClose(clean, open);
  return end < 0 ? undefined : clean.slice(start, end + 1);
}

/** Module syntax the sandbox's plain script context cannot run: `export` keywords and CommonJS export lines. */
function asScript(code: string): string {
  return code
    .replace(/^(\s*)export\s+default\s+(?=(?:async\s+)?function\b)/gm, '$1')
    .replace(/^(\s*)export\s+(?=(?:async\s+)?function\b|const\b|let\b|var\b)/gm, '$1')
    .replace(/^\s*(?:module\.exports|exports\.[\w$]+)\s*=.*$/gm, '')
    .replace(/\s+$/, '');
}

function definesFunction(code: string, name: string): boolean {
  const n = escapeRegExp(name);
  return new RegExp(`function\\s+${n}\\s*\\(|(?:const|let|var)\\s+${n}\\s*=`).test(code);
}

/** A model sometimes keeps explaining inside the fence after the function; cut after the last brace. */
function stripTrailingProse(code: string): string {
  const last = code.lastIndexOf('}');
  if (last < 0) return code;
  const tail = code.slice(last + 1);
  return /^[\s;]*$/.test(tail) || /^\s*(\/\/|\n\s*(module\.)?exports)/.test(tail) ? code : code.slice(0, last + 1);
}

/** Index of the bracket closing the one at `open`, skipping strings, template literals and comments; -1 if none. */
function matchingClose(text: string, open: number): number {
  const pairs: Record<string, string> = { '{': '}', '[': ']', '(': ')' };
  const stack: string[] = [];
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"' || c === "'" || c === '`') {
      i = skipString(text, i);
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const endc = text.indexOf('*/', i + 2);
      i = endc < 0 ? text.length : endc + 1;
      continue;
    }
    if (pairs[c]) stack.push(pairs[c]!);
    else if (c === '}' || c === ']' || c === ')') {
      if (stack.pop() !== c) return -1;
      if (stack.length === 0) return i;
    }
  }
  return -1;
}

function skipString(text: string, start: number): number {
  const quote = text[start];
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === quote) return i;
    else if (text[i] === '\n' && quote !== '`') return i; // an unterminated quote ends at the line
  }
  return text.length;
}

/**
 * The first JSON value (object or array) in the text, repaired for the usual model noise.
 * `want` restricts it to an array or an object. Returns undefined when nothing parses.
 */
export function extractJson(text: string, want?: 'array' | 'object'): unknown {
  const clean = normalizeQuotes(normalizeNewlines(text));
  // Fenced JSON first: the model's own delimitation beats our guessing.
  const candidates = [...codeBlocks(clean).filter((b) => ['json', 'json5', 'javascript', 'js', ''].includes(b.lang)).map((b) => b.code), clean];
  for (const source of candidates) {
    for (let i = 0; i < source.length; i++) {
      const c = source[i];
      if (c !== '{' && c !== '[') continue;
      if (want === 'array' && c !== '[') continue;
      if (want === 'object' && c !== '{') continue;
      const end = matchingClose(source, i);
      const slice = end < 0 ? closeTruncated(source.slice(i)) : source.slice(i, end + 1);
      if (slice === undefined) continue;
      const value = parseLenient(slice);
      if (value !== undefined && typeof value === 'object' && value !== null) return value;
    }
  }
  return undefined;
}

/** Output cut off mid-array: keep the complete items and close the brackets. */
function closeTruncated(text: string): string | undefined {
  const stack: string[] = [];
  let lastSafe = -1;
  let closersAtSafe: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"' || c === "'") {
      const end = skipString(text, i);
      if (end >= text.length) break;
      i = end;
      continue;
    }
    if (c === '{' || c === '[') stack.push(c === '{' ? '}' : ']');
    else if (c === '}' || c === ']') stack.pop();
    if (c === ',' || c === '}' || c === ']') {
      lastSafe = c === ',' ? i - 1 : i;
      closersAtSafe = [...stack];
    }
  }
  if (lastSafe < 0 || closersAtSafe.length === 0) return undefined;
  return text.slice(0, lastSafe + 1) + closersAtSafe.reverse().join('');
}

function parseLenient(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // fall through to repairs
  }
  const repaired = repairJson(text);
  try {
    return JSON.parse(repaired);
  } catch {
    return undefined;
  }
}

/** Rewrites JS-ish / Python-ish literal text into JSON, token by token so string contents are left alone. */
function repairJson(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"' || c === "'") {
      const end = skipString(text, i);
      const body = text.slice(i + 1, Math.min(end, text.length));
      out += JSON.stringify(c === "'" ? body.replace(/\\'/g, "'") : unescapeJsonBody(body));
      i = end;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl - 1;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const e = text.indexOf('*/', i + 2);
      i = e < 0 ? text.length : e + 1;
      continue;
    }
    if (c === '#') {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl - 1;
      continue;
    }
    const word = /^[A-Za-z_$][\w$-]*/.exec(text.slice(i))?.[0];
    if (word) {
      const literal: Record<string, string> = { None: 'null', True: 'true', False: 'false', null: 'null', true: 'true', false: 'false', undefined: 'null', NaN: 'null' };
      // A bare word followed by ':' is an unquoted key.
      const after = text.slice(i + word.length).match(/^\s*:/);
      out += after ? JSON.stringify(word) : (literal[word] ?? JSON.stringify(word));
      i += word.length - 1;
      continue;
    }
    out += c;
  }
  // Trailing commas before a closer, and doubled commas.
  return out.replace(/,\s*([}\]])/g, '$1').replace(/,\s*,/g, ',');
}

function unescapeJsonBody(body: string): string {
  try {
    return JSON.parse(`"${body.replace(/\n/g, '\\n')}"`) as string;
  } catch {
    return body;
  }
}

/**
 * A list of strings: a JSON array (of strings, or of objects with a name-like field), else bullet or
 * numbered lines, else one comma-separated line. Duplicates (case-insensitive) are dropped.
 */
export function extractList(text: string): string[] {
  const json = extractJson(text);
  let items: string[] | undefined;
  if (Array.isArray(json)) {
    items = json.flatMap((v) => {
      if (typeof v === 'string' || typeof v === 'number') return [String(v)];
      if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        const key = ['name', 'attribute', 'field', 'title', 'value'].find((k) => typeof o[k] === 'string');
        return key ? [String(o[key])] : [];
      }
      return [];
    });
  } else if (json && typeof json === 'object') {
    const arr = Object.values(json as Record<string, unknown>).find(Array.isArray);
    if (arr) items = (arr as unknown[]).filter((v) => typeof v === 'string').map(String);
  }
  if (!items) {
    const body = stripFences(normalizeQuotes(normalizeNewlines(text)));
    const lines = body.split('\n');
    const bullets = lines.filter((l) => /^\s*(?:[-*•+]|\d+[.)]|[a-z][.)])\s+\S/.test(l));
    if (bullets.length > 0) {
      items = bullets.map((l) => l.replace(/^\s*(?:[-*•+]|\d+[.)]|[a-z][.)])\s+/, ''));
    } else {
      const line = lines.map((l) => l.trim()).filter((l) => l.includes(',')).sort((a, b) => b.split(',').length - a.split(',').length)[0];
      items = line ? line.replace(/^[^:]*:\s*/, '').split(',') : lines.filter((l) => l.trim() !== '');
    }
    // "title – the name of the book", "Publisher: the company": the item is what precedes the gloss.
    items = items.map((s) => cleanValue(s.replace(/(?:\s+[-–—]|:)\s+.*$/, '')));
  }
  const seen = new Set<string>();
  const out: string[] = [];
  for (const raw of items) {
    const item = cleanValue(raw);
    if (!item || seen.has(item.toLowerCase())) continue;
    seen.add(item.toLowerCase());
    out.push(item);
  }
  return out;
}

/**
 * "attribute: value" pairs, as a map from the attribute (as written, trimmed) to its value, or null
 * where the model said the value is missing. A JSON object answer is accepted too.
 */
export function extractAttributeValues(text: string): Record<string, string | null> {
  const json = extractJson(text, 'object');
  if (json && typeof json === 'object' && !Array.isArray(json)) {
    const out: Record<string, string | null> = {};
    for (const [k, v] of Object.entries(json as Record<string, unknown>)) {
      out[k.trim()] = v === null || v === undefined ? null : missingToNull(Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v));
    }
    return out;
  }
  const out: Record<string, string | null> = {};
  const body = stripFences(normalizeQuotes(normalizeNewlines(text)));
  for (const rawLine of body.split('\n')) {
    const line = rawLine.replace(/^\s*(?:[-*•+]|\d+[.)])\s+/, '').trim();
    const m = /^(\*\*|__)?([^:=|]{1,80}?)\1?\s*(?::|=|\|)\s*(\*\*|__)?\s*(.*)$/.exec(line);
    if (!m) continue;
    const key = cleanValue(m[2]!.replace(/\*\*|__/g, ''));
    if (!key || /\s{2,}/.test(key) || key.split(/\s+/).length > 6) continue; // a sentence, not an attribute
    out[key] = missingToNull(m[4]!.replace(/\*\*|__/g, ''));
  }
  return out;
}

/** The value of one attribute in a direct-extraction answer (a bare value, an "attr: value" line or JSON). */
export function extractValue(text: string, attribute: string): string | null {
  const pairs = extractAttributeValues(text);
  const wanted = attribute.trim().toLowerCase();
  const key = Object.keys(pairs).find((k) => k.toLowerCase() === wanted || k.toLowerCase().replace(/[\s-]+/g, '_') === wanted.replace(/[\s-]+/g, '_'));
  if (key !== undefined) return pairs[key]!;
  const body = stripFences(normalizeQuotes(normalizeNewlines(text))).trim();
  const lines = body.split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.length === 1) return missingToNull(lines[0]!);
  return null;
}

const MISSING = /^(?:n\/?a|none|null|nil|unknown|not (?:found|available|applicable|present|given|specified|mentioned|listed)|no (?:value|information|data)|-+|—|\?)$/i;

function missingToNull(value: string): string | null {
  const v = cleanValue(value);
  return v === '' || MISSING.test(v) ? null : v;
}

function cleanValue(value: string): string {
  let v = value.trim().replace(/\*\*|__/g, '').replace(/^[`*_]+|[`*_]+$/g, '').trim();
  v = v.replace(/[,;]+$/, '').trim();
  if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v[v.length - 1] === v[0]) v = v.slice(1, -1).trim();
  return v;
}

function stripFences(text: string): string {
  const blocks = codeBlocks(text);
  return blocks.length > 0 ? blocks.map((b) => b.code).join('\n') : text;
}

function normalizeNewlines(text: string): string {
  return text.replace(/\r\n?/g, '\n');
}

/**
 * Curly double quotes become straight ones: models and word processors love them, JSON does not.
 * Curly apostrophes are left alone, because inside values they are content ("Harry’s").
 */
function normalizeQuotes(text: string): string {
  return text.replace(/[\u201C\u201D\u201E\u201F\u2033]/g, '"');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
