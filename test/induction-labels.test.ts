import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { parseHtml } from '../src/ingest/html.js';
import { inductionHook } from '../src/pipeline/induction/candidates.js';
import { buildApp } from '../src/server/app.js';
import { givenLabels } from '../src/store/labels.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { swdeDir } from './pipeline-script.js';

const pagesDir = path.join(swdeDir, 'pages');
const isbns: Record<string, string> = { '0000.htm': '9781602600157', '0001.htm': '9781602600140', '0002.htm': '9781602600638', '0003.htm': '9781400073979' };

let dir: string;
let dbFile: string;
let db: Db;
let app: FastifyInstance;
let base: string;
let corpusId: number;
const docIds: Record<string, number> = {};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-labels-'));
  dbFile = path.join(dir, 'e.db');
  db = openDatabase(dbFile);
  corpusId = Number(db.prepare("INSERT INTO corpora (name) VALUES ('books')").run().lastInsertRowid);
  const insert = db.prepare(
    "INSERT INTO documents (corpus_id, filename, content_hash, kind, byte_size, raw, text, status) VALUES (?, ?, ?, 'html', ?, ?, ?, 'ready')",
  );
  for (const name of Object.keys(isbns)) {
    const raw = fs.readFileSync(path.join(pagesDir, name));
    docIds[name] = Number(insert.run(corpusId, name, name, raw.length, raw, parseHtml(raw).text).lastInsertRowid);
  }
  app = await buildApp({ db, settings: loadSettings({ databasePath: dbFile }) });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  db?.close();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

const post = (url: string, body: unknown) =>
  fetch(base + url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('labels API', () => {
  it('stores a label per document and attribute, replaces it on relabel, and lists it', async () => {
    let res = await post(`/corpora/${corpusId}/labels`, { document: docIds['0000.htm'], attribute: 'author', value: 'Paul Kent' });
    expect(res.status).toBe(200);
    expect((await json(res)).labels[0]).toMatchObject({ documentId: docIds['0000.htm'], attribute: 'author', values: ['Paul Kent'] });

    res = await post(`/corpora/${corpusId}/labels`, {
      labels: [
        { document: '0000.htm', attribute: 'author', value: ['Paul Kent', 'Someone Else'] },
        { document: '0001.htm', attribute: 'author', value: null },
      ],
    });
    expect(res.status).toBe(200);
    const list = await json(await fetch(`${base}/corpora/${corpusId}/labels?attribute=author`));
    expect(list.labels.map((l: { filename: string; values: string[] }) => [l.filename, l.values])).toEqual([
      ['0000.htm', ['Paul Kent', 'Someone Else']],
      ['0001.htm', []],
    ]);
  });

  it('answers bad input with a stable code and keeps what was stored', async () => {
    const before = await json(await fetch(`${base}/corpora/${corpusId}/labels`));
    let res = await post(`/corpora/${corpusId}/labels`, { labels: [{ document: '0002.htm', attribute: 'author', value: 'X' }, { document: 'nope.htm', attribute: 'author', value: 'Y' }] });
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe('document_not_found');
    res = await post(`/corpora/999/labels`, { document: 1, attribute: 'author', value: 'Y' });
    expect((await json(res)).error.code).toBe('corpus_not_found');
    res = await post(`/corpora/${corpusId}/labels`, { document: 1, attribute: 'author', value: { name: 'x' } });
    expect(res.status).toBe(400);
    res = await post(`/corpora/${corpusId}/labels`, { document: 1, attribute: '1; DROP TABLE labels', value: 'x' });
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe('invalid_attribute');
    expect(await json(await fetch(`${base}/corpora/${corpusId}/labels`))).toEqual(before);
  });

  it('learns candidate functions from the labels, with no model endpoint', async () => {
    let res = await post(`/corpora/${corpusId}/labels/isbn_13/induce`, {});
    expect((await json(res)).error.code).toBe('too_few_labels');
    await post(`/corpora/${corpusId}/labels`, { labels: Object.entries(isbns).map(([document, value]) => ({ document, attribute: 'isbn_13', value })) });
    res = await post(`/corpora/${corpusId}/labels/isbn_13/induce`, { maxCandidates: 3 });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.labelled).toBe(4);
    expect(body.candidates.length).toBeGreaterThan(0);
    expect(body.candidates.length).toBeLessThanOrEqual(3);
    expect(body.candidates[0]).toMatchObject({ origin: 'induction', looScore: 1 });
    expect(body.candidates[0].source).toContain('ISBN-13');
  });

  it('feeds the extract job: given labels override silver ones, and induced candidates join the LLM-written ones', async () => {
    const ids = Object.values(docIds);
    const given = givenLabels(db, corpusId, 'isbn_13', ids);
    expect(given.get(docIds['0002.htm'])).toEqual(['9781602600638']);
    const settings = loadSettings();
    const sample = Object.values(docIds).map((id) => ({ id, text: db.prepare('SELECT text FROM documents WHERE id = ?').pluck().get(id) as string, chunks: [] }));
    // Wrong silver labels everywhere: the user's labels must win, or nothing would agree with ISBN-13.
    const silver = Object.fromEntries(ids.map((id) => [id, ['wrong']]));
    const candidates = await inductionHook(db, settings)({ corpusId, attribute: { name: 'isbn_13' }, sample, silver });
    expect(candidates.length).toBeGreaterThan(0);
    expect(candidates[0]).toMatchObject({ origin: 'induction', prompt: expect.stringMatching(/^induction:/), id: expect.stringMatching(/^induction:[0-9a-f]{16}$/) });
    expect(candidates[0].source).toContain('ISBN-13');
    const none = await inductionHook(db, settings)({ corpusId, attribute: { name: 'unlabelled' }, sample: sample.slice(0, 1), silver: {} });
    expect(none).toEqual([]);
  });

  it('deletes a label', async () => {
    const res = await fetch(`${base}/corpora/${corpusId}/labels?document=0001.htm&attribute=author`, { method: 'DELETE' });
    expect(await json(res)).toEqual({ removed: 1 });
    const again = await fetch(`${base}/corpora/${corpusId}/labels?document=0001.htm&attribute=author`, { method: 'DELETE' });
    expect(again.status).toBe(404);
  });
});

describe('evaporate label', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'label', ...args, '--db', dbFile], { encoding: 'utf8', cwd: path.resolve(import.meta.dirname, '..') });

  it('sets and lists labels through the same store as the API', () => {
    const set = cli('books', '0003.htm', 'publisher', 'WaterBrook Press');
    expect(set.status, set.stderr).toBe(0);
    expect(set.stdout).toContain('publisher = "WaterBrook Press"');
    const list = cli('list', 'books', '--attribute', 'publisher', '--json');
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ filename: '0003.htm', values: ['WaterBrook Press'] })]);
    const bad = cli('books', 'missing.htm', 'publisher', 'X');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('document_not_found');
    const induce = cli('induce', 'books', 'publisher');
    expect(induce.status).toBe(1);
    expect(induce.stderr).toContain('too_few_labels');
  });
});
