/**
 * The REST routes the console reads (a result table's rows with cell confidence, one cell's provenance) and
 * the static route that serves the console, with the API key gate around them. A real server and SQLite.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { columnsFor, materializeTable, type MaterialCell } from '../src/pipeline/materialize.js';
import { buildApp } from '../src/server/app.js';
import { consoleDir } from '../src/server/routes/console.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { insertDocument } from '../src/store/documents.js';
import { buildConsole } from './console-helpers.js';

let app: FastifyInstance | undefined;
let db: Db | undefined;
afterEach(async () => {
  await app?.close();
  db?.close();
  app = db = undefined;
});

beforeAll(async () => {
  await buildConsole();
}, 120_000);

async function start(apiKey?: string) {
  db = openDatabase(':memory:');
  app = await buildApp({ db, settings: { ...loadSettings({ databasePath: ':memory:' }), apiKey } });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const get = async (p: string, headers: Record<string, string> = {}) => {
    const res = await fetch(url + p, { headers });
    return { status: res.status, type: res.headers.get('content-type') ?? '', headers: { csp: res.headers.get('content-security-policy') ?? '' }, text: await res.text() };
  };
  return { url, db, get, json: async (p: string) => JSON.parse((await get(p)).text) };
}

/** A corpus "books" with four documents and a materialized table: title filled, isbn_13 on two rows, pages empty. */
function seed(db: Db): { docs: number[]; fn: number } {
  const corpusId = Number(db.prepare("INSERT INTO corpora (name) VALUES ('books')").run().lastInsertRowid);
  const texts = ['Title: Zebra Tales ISBN 9781111111111', 'Title: Apple Pie', 'Title: Mango ISBN 9782222222222', 'Title: Kiwi'];
  const docs = texts.map((text, i) =>
    insertDocument(db, { corpusId, filename: `p${i}.html`, contentHash: `h${i}`, kind: 'html', raw: Buffer.from(text), text, structure: {}, chunks: [] }),
  );
  const attr = (name: string) => Number(db.prepare("INSERT INTO attributes (corpus_id, name, origin) VALUES (?, ?, 'user')").run(corpusId, name).lastInsertRowid);
  const [title, isbn, pages] = [attr('title'), attr('isbn_13'), attr('pages')];
  const fn = Number(
    db
      .prepare("INSERT INTO functions (attribute_id, source, source_hash, origin, sample_score, learned_accuracy, selected) VALUES (?, ?, 'x', 'induction', 1, 0.93, 1)")
      .run(isbn, 'function extract(doc) { return /ISBN (\\d{13})/.exec(doc.text)?.[1] ?? null; }').lastInsertRowid,
  );
  const other = Number(db.prepare("INSERT INTO functions (attribute_id, source, source_hash, origin, learned_accuracy, selected) VALUES (?, 'function f() { return null; }', 'y', 'llm', 0.4, 1)").run(isbn).lastInsertRowid);
  const columns = columnsFor([
    { id: title, name: 'title', type: 'text' },
    { id: isbn, name: 'isbn_13', type: 'text' },
    { id: pages, name: 'pages', type: 'integer' },
  ]);
  const cell = (d: number, a: number, value: string, confidence: number, functions: string[], span: [number, number] | null): MaterialCell => ({
    documentId: docs[d], attributeId: a, value, origin: 'functions', confidence, functions, span,
  });
  materializeTable(db, {
    corpusId, table: 'corpus_books_1', jobId: null, columns, documentIds: docs,
    cells: [
      cell(0, title, 'Zebra Tales', 0.9, [], [7, 18]),
      cell(1, title, 'Apple Pie', 0.3, [], [7, 16]),
      cell(2, title, 'Mango', 0.8, [], [7, 12]),
      cell(3, title, 'Kiwi', 0.7, [], [7, 11]),
      cell(0, isbn, '9781111111111', 0.95, [String(fn)], [24, 37]),
      cell(2, isbn, '9782222222222', 0.6, [String(fn), String(other)], [18, 31]),
    ],
  });
  return { docs, fn };
}

describe('table routes', () => {
  it('pages and sorts the rows with each cell\'s confidence, and sums up each column', async () => {
    const { json, get, db } = await start();
    expect((await json('/corpora/books/table/rows')).error?.code).toBe('corpus_not_found');
    db.prepare("INSERT INTO corpora (name) VALUES ('empty')").run();
    expect((await json('/corpora/empty/table/rows')).error.code).toBe('no_result_table');
    const { docs } = seed(db);

    const page = await json('/corpora/books/table/rows?sort=title&order=asc&limit=2');
    expect(page.total).toBe(4);
    expect(page.rows.map((r: any) => r.cells.title.value)).toEqual(['Apple Pie', 'Kiwi']);
    expect(page.rows[0]).toMatchObject({ documentId: docs[1], filename: 'p1.html', cells: { title: { confidence: 0.3, origin: 'functions' }, isbn_13: { value: null, confidence: null } } });
    const next = await json('/corpora/books/table/rows?sort=title&order=asc&limit=2&offset=2');
    expect(next.rows.map((r: any) => r.cells.title.value)).toEqual(['Mango', 'Zebra Tales']);
    // Empty cells sort last either way.
    const byIsbn = await json('/corpora/books/table/rows?sort=isbn_13&order=desc');
    expect(byIsbn.rows.map((r: any) => r.cells.isbn_13.value)).toEqual(['9782222222222', '9781111111111', null, null]);

    const columns = Object.fromEntries(page.columns.map((c: any) => [c.column, c]));
    expect(columns.title).toMatchObject({ filled: 4, type: 'text' });
    expect(columns.title.meanConfidence).toBeCloseTo(0.675, 6);
    expect(columns.isbn_13.filled).toBe(2);
    expect(columns.pages).toMatchObject({ filled: 0, meanConfidence: null, type: 'integer' });

    const bad = await get('/corpora/books/table/rows?sort=nope');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text).error).toMatchObject({ code: 'unknown_column' });
    expect(JSON.parse(bad.text).error.message).toContain('isbn_13');
    expect((await get('/corpora/books/table/rows?limit=0')).status).toBe(400);
  });

  it("answers a cell's provenance: span, the functions that agreed with their code and learned accuracy", async () => {
    const { json, get, db } = await start();
    const { docs, fn } = seed(db);
    const cell = await json(`/corpora/books/table/cells/${docs[2]}/isbn_13`);
    expect(cell).toMatchObject({ documentId: docs[2], attribute: 'isbn_13', column: 'isbn_13', value: '9782222222222', origin: 'functions', confidence: 0.6, span: [18, 31] });
    // Best learned accuracy first.
    expect(cell.functions.map((f: any) => [f.id, f.learnedAccuracy])).toEqual([
      [fn, 0.93],
      [fn + 1, 0.4],
    ]);
    expect(cell.functions[0].source).toContain('ISBN');
    const text = (await json(`/documents/${docs[2]}`)).text as string;
    expect(text.slice(18, 31)).toBe('9782222222222');

    const empty = await json(`/corpora/books/table/cells/${docs[1]}/isbn_13`);
    expect(empty).toMatchObject({ value: null, confidence: null, span: null, functions: [] });
    expect((await json(`/corpora/books/table/cells/${docs[1]}/nope`)).error.code).toBe('unknown_column');
    expect((await json('/corpora/books/table/cells/99999/title')).error.code).toBe('row_not_found');
    expect((await get('/corpora/books/table/cells/abc/title')).status).toBe(400);
  });
});

describe('console route', () => {
  it('serves the built console at / and its assets, and nothing else from the disk', async () => {
    const { get } = await start();
    const index = await get('/');
    expect(index.status).toBe(200);
    expect(index.type).toContain('text/html');
    expect(index.text).toContain('<div id="app">');
    expect(index.headers.csp).toContain("script-src 'self'");
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(index.text)![1];
    const js = await get(script);
    expect(js.status).toBe(200);
    expect(js.type).toContain('javascript');
    expect(js.text).toBe(fs.readFileSync(path.join(consoleDir, script)).toString());
    expect((await get('/assets/nope.js')).status).toBe(404);
    expect((await get('/assets/../../package.json')).status).toBe(404);
    expect((await get('/assets/%2e%2e/%2e%2e/package.json')).status).toBe(404);
  });

  it('with an API key, loads the page and assets without it but no data', async () => {
    const { get, db } = await start('k3y');
    seed(db);
    const index = await get('/');
    expect(index.status).toBe(200);
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(index.text)![1];
    expect((await get(script)).status).toBe(200);
    for (const p of ['/corpora', '/corpora/books/table/rows', '/corpora/books/table/cells/1/title', '/documents/1', '/?x=/corpora']) {
      const res = await get(p);
      if (p.startsWith('/?')) expect(res.text).not.toContain('Zebra');
      else expect(res.status, p).toBe(401);
    }
    expect((await get('/corpora/books/table/rows', { authorization: 'Bearer k3y' })).status).toBe(200);
  });
});
