import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { loadSettings, type Settings } from '../src/config.js';
import { EvaporateError } from '../src/errors.js';
import { assertSafeBinding, buildApp } from '../src/server/app.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { makeZip } from './ingest-helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const reportPdf = fs.readFileSync(path.join(root, 'fixtures', 'ingest', 'report.pdf'));

let app: FastifyInstance | undefined;
let db: Db | undefined;
afterEach(async () => {
  await app?.close();
  db?.close();
  app = undefined;
  db = undefined;
});

/** A real server on a random loopback port, talked to with fetch. */
async function start(overrides: { apiKey?: string; ingest?: Partial<Settings['ingest']> } = {}) {
  const base = loadSettings({ databasePath: ':memory:' });
  const settings: Settings = { ...base, apiKey: overrides.apiKey, ingest: { ...base.ingest, ...overrides.ingest } };
  db = openDatabase(':memory:');
  app = await buildApp({ db, settings });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const call = (p: string, init: RequestInit = {}) => fetch(url + p, init);
  const json = async (p: string, init: RequestInit = {}) => {
    const res = await call(p, init);
    return { status: res.status, body: (await res.json()) as any };
  };
  return { url, call, json, db };
}

const post = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

function form(files: { name: string; data: Buffer | string }[]): FormData {
  const f = new FormData();
  for (const file of files) f.append('file', new Blob([file.data]), file.name);
  return f;
}

describe('REST service', () => {
  it('creates a corpus, takes uploads, lists by pages, serves text and raw bytes, deletes', async () => {
    const { json, call } = await start();
    expect((await json('/health')).body).toEqual({ status: 'ok' });
    const created = await json('/corpora', post({ name: 'reports', description: 'device reports' }));
    expect(created.status).toBe(201);
    expect((await json('/corpora', post({ name: 'reports' }))).body.error.code).toBe('corpus_exists');

    const upload = await json('/corpora/reports/documents', {
      method: 'POST',
      body: form([
        { name: 'report.pdf', data: reportPdf },
        { name: 'page.html', data: '<html><body><h1>Hello</h1><p>World</p></body></html>' },
        { name: 'notes.txt', data: 'plain notes' },
      ]),
    });
    expect(upload.status).toBe(201);
    expect(upload.body).toMatchObject({ corpusId: created.body.id, stored: 3, duplicates: 0, failed: 0 });

    const again = await json(`/corpora/${created.body.id}/documents`, { method: 'POST', body: form([{ name: 'copy.txt', data: 'plain notes' }]) });
    expect(again.status).toBe(200);
    expect(again.body.results[0]).toMatchObject({ status: 'duplicate', documentId: upload.body.results[2].documentId });

    const page1 = await json('/corpora/reports/documents?limit=2');
    expect(page1.body.items.map((d: any) => d.filename)).toEqual(['report.pdf', 'page.html']);
    const page2 = await json(`/corpora/reports/documents?limit=2&after=${page1.body.nextAfter}`);
    expect(page2.body.items.map((d: any) => d.filename)).toEqual(['notes.txt']);
    expect(page2.body.nextAfter).toBeNull();

    const pdfId = upload.body.results[0].documentId;
    const doc = await json(`/documents/${pdfId}?chunks=true`);
    expect(doc.body.text).toContain('CardioSense Monitor 3000');
    expect(doc.body.structure.pageCount).toBe(2);
    expect(doc.body.chunks[0]).toMatchObject({ idx: 0, startChar: 0 });
    const raw = await call(`/documents/${pdfId}?raw=true`);
    expect(raw.headers.get('content-type')).toBe('application/pdf');
    expect(Buffer.from(await raw.arrayBuffer()).equals(reportPdf)).toBe(true);

    expect((await call(`/documents/${pdfId}`, { method: 'DELETE' })).status).toBe(204);
    expect((await json(`/documents/${pdfId}`)).body.error.code).toBe('document_not_found');
    expect((await json('/corpora/reports')).body).toMatchObject({ documents: 2, failed: 0 });
    expect((await call('/corpora/reports', { method: 'DELETE' })).status).toBe(204);
    expect((await json('/corpora')).body.items).toEqual([]);
  });

  it('answers a file over the limit with 413 naming the limit, and still takes the files after it', async () => {
    const { json } = await start({ ingest: { maxFileBytes: 1024 * 1024 } });
    await json('/corpora', post({ name: 'c' }));
    const alone = await json('/corpora/c/documents', { method: 'POST', body: form([{ name: 'huge.txt', data: Buffer.alloc(3 * 1024 * 1024, 0x61) }]) });
    expect(alone.status).toBe(413);
    expect(alone.body.error.code).toBe('file_too_large');
    expect(alone.body.error.message).toContain('1 MiB (1048576 bytes');
    const mixed = await json('/corpora/c/documents', {
      method: 'POST',
      body: form([{ name: 'huge.txt', data: Buffer.alloc(3 * 1024 * 1024, 0x62) }, { name: 'small.txt', data: 'fits' }]),
    });
    expect(mixed.status).toBe(201);
    expect(mixed.body.results.map((r: any) => r.error?.code ?? r.status)).toEqual(['file_too_large', 'stored']);
  });

  it('takes 1,000 files in one request, storing the good ones and reporting each bad one', async () => {
    const { json, db } = await start();
    await json('/corpora', post({ name: 'many' }));
    const files = Array.from({ length: 1000 }, (_, i) => {
      if (i % 20 === 3) return { name: `empty-${i}.txt`, data: Buffer.alloc(0) };
      if (i % 20 === 7) return { name: `latin-${i}.txt`, data: Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20 + (i % 50)]) };
      if (i % 20 === 11) return { name: `image-${i}.png`, data: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, i % 256]) };
      return { name: `page-${i}.html`, data: `<html><body><h1>Item ${i}</h1><table><tr><td>price</td><td>${i}.99</td></tr></table></body></html>` };
    });
    const res = await json('/corpora/many/documents', { method: 'POST', body: form(files) });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ stored: 850, duplicates: 0, failed: 150 });
    const codes = new Map<string, number>();
    for (const r of res.body.results) if (r.error) codes.set(r.error.code, (codes.get(r.error.code) ?? 0) + 1);
    expect(Object.fromEntries(codes)).toEqual({ empty_file: 50, invalid_encoding: 50, unsupported_type: 50 });
    expect(res.body.results[3].filename).toBe('empty-3.txt');
    expect(db.prepare("SELECT count(*) FROM documents WHERE status = 'ready'").pluck().get()).toBe(850);
    expect(db.prepare('SELECT count(DISTINCT document_id) FROM chunks').pluck().get()).toBe(850);
  });

  it('stops at the file count limit per request, keeping and reporting the files before it', async () => {
    const { json, db } = await start({ ingest: { maxFilesPerRequest: 5 } });
    await json('/corpora', post({ name: 'capped' }));
    const files = Array.from({ length: 8 }, (_, i) => ({ name: `f${i}.txt`, data: `file number ${i}` }));
    const res = await json('/corpora/capped/documents', { method: 'POST', body: form(files) });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('too_many_files');
    expect(res.body.error.message).toContain('more than 5 files');
    expect(res.body.error.message).toContain('the first 5 were processed');
    expect(res.body.error.details).toMatchObject({ stored: 5, failed: 0 });
    expect(res.body.error.details.results.map((r: any) => r.filename)).toEqual(['f0.txt', 'f1.txt', 'f2.txt', 'f3.txt', 'f4.txt']);
    expect(db.prepare("SELECT count(*) FROM documents WHERE status = 'ready'").pluck().get()).toBe(5);
  });

  it('unpacks an uploaded archive and refuses a zip bomb with 413', async () => {
    const { json } = await start({ ingest: { archiveMaxCompressionRatio: 100 } });
    await json('/corpora', post({ name: 'z' }));
    const zip = makeZip([{ name: 'a/one.txt', data: Buffer.from('one') }, { name: 'a/two.html', data: Buffer.from('<p>two</p>') }]);
    const ok = await json('/corpora/z/documents', { method: 'POST', body: form([{ name: 'bundle.zip', data: zip }]) });
    expect(ok.body.results.map((r: any) => [r.filename, r.status])).toEqual([['bundle.zip/a/one.txt', 'stored'], ['bundle.zip/a/two.html', 'stored']]);
    const bomb = makeZip([{ name: 'z.txt', data: Buffer.alloc(20 * 1024 * 1024) }]);
    const refused = await json('/corpora/z/documents', { method: 'POST', body: form([{ name: 'bomb.zip', data: bomb }]) });
    expect(refused.status).toBe(413);
    expect(refused.body.error.code).toBe('archive_bomb');
  });

  it('speaks one error shape: validation, unknown routes, non-multipart uploads', async () => {
    const { json, call } = await start();
    const invalid = await json('/corpora', post({}));
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.code).toBe('invalid_request');
    expect((await json('/corpora', post({ name: '1bad name' }))).body.error.code).toBe('invalid_corpus_name');
    expect((await json('/nowhere')).body.error.code).toBe('route_not_found');
    await json('/corpora', post({ name: 'c' }));
    const notForm = await json('/corpora/c/documents', post({ file: 'x' }));
    expect(notForm.status).toBe(415);
    expect(notForm.body.error.code).toBe('not_multipart');
    const paging = await call('/corpora/c/documents?limit=5000');
    expect(paging.status).toBe(400);
  });

  it('serves its schemas as OpenAPI and a docs page', async () => {
    const { json, call } = await start();
    const spec = (await json('/openapi.json')).body;
    expect(spec.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/corpora', '/corpora/{id}/documents', '/documents/{id}', '/health']));
    expect(spec.components.schemas.Error).toBeDefined();
    expect((await call('/docs/')).status).toBe(200);
  });

  it('requires the API key on every route but /health when one is set', async () => {
    const { call } = await start({ apiKey: 's3cret' });
    expect((await call('/health')).status).toBe(200);
    const denied = await call('/corpora');
    expect(denied.status).toBe(401);
    expect(((await denied.json()) as any).error.code).toBe('unauthorized');
    expect((await call('/corpora', { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await call('/openapi.json')).status).toBe(401);
    expect((await call('/corpora', { headers: { authorization: 'Bearer s3cret' } })).status).toBe(200);
  });

  it('refuses to bind off loopback without an API key', () => {
    expect(() => assertSafeBinding({ host: '0.0.0.0', apiKey: undefined })).toThrow(EvaporateError);
    expect(() => assertSafeBinding({ host: '0.0.0.0', apiKey: 'k' })).not.toThrow();
    expect(() => assertSafeBinding({ host: '127.0.0.1', apiKey: undefined })).not.toThrow();
  });
});
