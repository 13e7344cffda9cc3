/**
 * A small book site for tests of the LLM path: real HTML pages (parsed by the real parser into a real SQLite
 * database), the real sandbox and label model, and a scripted model behind the fake OpenAI server over real HTTP.
 * Each page carries a marker "Item NN" so the script can tell which page a prompt shows.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { openDatabase, type Db } from '../src/store/database.js';
import { loadSettings, type Settings } from '../src/config.js';
import { parseHtml } from '../src/ingest/html.js';
import { chunkText } from '../src/ingest/chunk.js';
import { insertDocument } from '../src/store/documents.js';
import { createSandbox } from '../src/sandbox/index.js';
import { labelModel } from '../src/weak-supervision/index.js';
import { createLlm, llmConfigFromEnv } from '../src/llm/index.js';
import type { Sandbox } from '../src/sandbox/types.js';
import type { ExtractDeps } from '../src/pipeline/extract-job.js';
import { startFakeOpenAI, type FakeChatRequest, type FakeOpenAI } from './fake-openai.js';

export interface Book {
  item: string;
  title: string;
  /** Shown after the title inside the heading, as real shops do: "(Paperback)". */
  subtitle?: string;
  authors: string[];
  genres: string[];
  price: string;
}

export function makeBooks(count: number, subtitled: (i: number) => boolean = (i) => i % 3 === 0): Book[] {
  const first = ['Anna', 'Ben', 'Clara', 'David', 'Eva', 'Frank', 'Grace', 'Hugo'];
  const last = ['Miller', 'Novak', 'Osei', 'Park', 'Quinn', 'Reyes', 'Stone', 'Tanaka'];
  const genres = ['Fiction', 'History', 'Mystery', 'Travel', 'Poetry'];
  return Array.from({ length: count }, (_, i) => ({
    item: String(i).padStart(2, '0'),
    // Titles with a semicolon must survive as one value.
    title: i % 7 === 3 ? `Roads; Rivers and Rain ${i}` : `The Book of ${['Stars', 'Salt', 'Glass', 'Winter', 'Maps'][i % 5]} ${i}`,
    ...(subtitled(i) ? { subtitle: ' (Paperback)' } : {}),
    authors: i % 2 === 0 ? [`${first[i % 8]} ${last[i % 8]}`, `${first[(i + 3) % 8]} ${last[(i + 5) % 8]}`] : [`${first[i % 8]} ${last[(i + 1) % 8]}`],
    genres: i % 3 === 1 ? [genres[i % 5], genres[(i + 1) % 5], genres[(i + 2) % 5]] : [genres[i % 5]],
    price: `$${10 + i}.99`,
  }));
}

// Pages without the format note carry a comment of the same length, so where notes go never changes the sample.
const PADDING = `<!--${' '.repeat('<span class="format"> (Paperback)</span>'.length - 7)}-->`;

export function bookPage(b: Book): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${b.title.replace(/;/g, ',')} | Shop</title></head><body>
<nav><a href="/">Home</a> <a href="/books">Books</a></nav>
<h1 class="title">${b.title}${b.subtitle ? `<span class="format">${b.subtitle}</span>` : ''}</h1>${b.subtitle ? '' : PADDING}
<p class="by">By: ${b.authors.map((a) => `<a class="author">${a}</a>`).join(', ')}</p>
<ul class="genres">${b.genres.map((g) => `<li class="genre">${g}</li>`).join('')}</ul>
<p>Price: <b class="price">${b.price}</b></p>
<p class="ref">Item ${b.item}</p>
<footer>Shop Inc.</footer></body></html>`;
}

export const task = (req: FakeChatRequest) => /TASK: ([a-z-]+)/.exec(req.prompt)?.[1];
export const attributeOf = (req: FakeChatRequest) =>
  /Attribute: ([a-z0-9_]+)/.exec(req.prompt)?.[1] ?? /attribute "([a-z0-9_]+)"/.exec(req.prompt)?.[1] ?? '';
/** Which page a prompt shows (its "Item NN" marker). */
export const itemOf = (req: FakeChatRequest) => /Item (\d\d)/.exec(req.prompt)?.[1];

export const fence = (src: string) => `\`\`\`javascript\n${src.trim()}\n\`\`\``;

export interface Harness {
  fake: FakeOpenAI;
  db: Db;
  dir: string;
  sandbox: Sandbox;
  corpusId: number;
  books: Book[];
  settings: Settings;
  deps: ExtractDeps;
  close(): Promise<void>;
}

export async function startHarness(
  options: { books?: number; subtitled?: (i: number) => boolean; corpusName?: string; settings?: (s: Settings) => void } = {},
): Promise<Harness> {
  const fake = await startFakeOpenAI();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-llmpath-'));
  const db = openDatabase(path.join(dir, 'e.db'));
  const corpusId = Number(db.prepare('INSERT INTO corpora (name) VALUES (?)').run(options.corpusName ?? 'books').lastInsertRowid);
  const books = makeBooks(options.books ?? 24, options.subtitled);
  for (const b of books) {
    const raw = Buffer.from(bookPage(b));
    const parsed = parseHtml(raw);
    insertDocument(db, {
      corpusId, filename: `${b.item}.htm`, contentHash: createHash('sha256').update(raw).digest('hex'), kind: 'html', raw,
      text: parsed.text, structure: { title: parsed.title }, chunks: chunkText(parsed.text, 3000),
    });
  }
  const settings = loadSettings({ databasePath: path.join(dir, 'e.db') });
  settings.sandbox = { ...settings.sandbox, callTimeoutMs: 2000, workers: 2 };
  settings.llm = { ...settings.llm, retryBaseMs: 5, retryMaxMs: 50 };
  options.settings?.(settings);
  const sandbox = createSandbox(settings.sandbox);
  const llm = createLlm({ db, settings, config: llmConfigFromEnv({ OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'test', EVAPORATE_MODEL: 'fake-model' }) });
  const deps: ExtractDeps = { db, llm, sandbox, labelModel: labelModel('one-coin'), settings };
  return {
    fake, db, dir, sandbox, corpusId, books, settings, deps,
    async close() {
      await sandbox.close();
      await fake.close();
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The document id of a book, by its item marker. */
export function documentIdOf(db: Db, corpusId: number, item: string): number {
  return (db.prepare('SELECT id FROM documents WHERE corpus_id = ? AND filename = ?').get(corpusId, `${item}.htm`) as { id: number }).id;
}

/** Function sources a capable model writes for the book pages, right and wrong ones. */
export const SOURCES = {
  titleRight: [
    `function extract(text, doc) {\n  const h = doc.selectOne('h1');\n  if (!h) return null;\n  const f = doc.selectOne('h1 .format');\n  return (f ? h.text.replace(f.text, '') : h.text).trim() || null;\n}`,
    `function extract(text, doc) {\n  const h = doc.selectOne('h1.title');\n  if (!h) return null;\n  const drop = h.select('span').map((s) => s.text).join('');\n  const t = drop ? h.text.slice(0, h.text.length - drop.length) : h.text;\n  return t.trim() || null;\n}`,
    `// the heading without its format note\nfunction extract(text, doc) {\n  const h = doc.textOf('h1');\n  return h ? h.replace(/\\s*\\((Paperback|Hardcover)\\)\\s*$/, '').trim() : null;\n}`,
    `function extract(text, doc) {\n  const h = doc.selectOne('h1');\n  if (!h) return null;\n  const kids = h.children.map((c) => c.text).join('');\n  return h.text.replace(kids, '').trim() || null;\n}`,
  ],
  /** Fits a silver label that wrongly kept the format note. */
  titleWithFormat: [
    `function extract(text, doc) {\n  return doc.textOf('h1');\n}`,
    `function extract(text, doc) {\n  const h = doc.selectOne('h1.title');\n  return h ? h.text : null;\n}`,
  ],
  price: [`function extract(text) {\n  const m = text.match(/Price:\\s*(\\$[0-9.]+)/);\n  return m ? m[1] : null;\n}`],
  authorList: [`function extract(text, doc) {\n  const a = doc.select('a.author').map((e) => e.text);\n  return a.length ? a : null;\n}`],
  authorJoined: [`function extract(text, doc) {\n  const a = doc.select('a.author').map((e) => e.text);\n  return a.length ? a.join('; ') : null;\n}`],
  authorDuplicated: [`function extract(text, doc) {\n  const a = doc.select('a.author').map((e) => e.text);\n  return a.length ? [...a, a[0]] : null;\n}`],
  genreAll: [`function extract(text, doc) {\n  const g = doc.select('li.genre').map((e) => e.text);\n  return g.length ? g : null;\n}`],
  genreFirst: [
    `function extract(text, doc) {\n  return doc.textOf('li.genre');\n}`,
    `function extract(text, doc) {\n  const g = doc.selectOne('ul.genres li');\n  return g ? g.text : null;\n}`,
    `function extract(text, doc) {\n  const g = doc.select('.genre');\n  return g.length ? g[0].text : null;\n}`,
  ],
};

export interface Script {
  attributes?: string[];
  /** Items whose direct extraction of title keeps the format note (a wrong silver label). */
  titleWithFormatFor?: string[];
  /** Function sources per attribute, cycled over the candidates asked for. */
  functions?: Record<string, string[]>;
  /** Or a synthesis answer computed from the request. */
  write?: (req: FakeChatRequest, candidate: number) => string;
}

function valueFor(book: Book, attribute: string, script: Script): unknown {
  switch (attribute) {
    case 'title':
      return script.titleWithFormatFor?.includes(book.item) && book.subtitle ? `${book.title}${book.subtitle}` : book.title;
    case 'author':
      return book.authors.length === 1 ? book.authors[0] : book.authors;
    case 'genre':
      return book.genres.length === 1 ? book.genres[0] : book.genres;
    case 'price':
      return book.price;
    default:
      return null;
  }
}

export function scriptModel(h: Pick<Harness, 'fake' | 'books'>, script: Script): void {
  const byItem = new Map(h.books.map((b) => [b.item, b]));
  h.fake.on((r) => task(r) === 'list-attributes', JSON.stringify({ attributes: script.attributes ?? ['title', 'price'] }));
  h.fake.on((r) => task(r) === 'merge-synonyms', '{"groups": []}');
  h.fake.on((r) => task(r) === 'plausibility', '{"plausible": true}');
  h.fake.on((r) => task(r) === 'extract-value', (r) => {
    const book = byItem.get(itemOf(r) ?? '');
    return JSON.stringify({ value: book ? valueFor(book, attributeOf(r), script) : null });
  });
  let served = 0;
  h.fake.on((r) => task(r) === 'write-function', (r, i) => {
    if (script.write) return script.write(r, i);
    const list = script.functions?.[attributeOf(r)] ?? [];
    return list.length ? fence(list[(served++ + i) % list.length]!) : 'I cannot write it.';
  });
}

