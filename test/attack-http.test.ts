/**
 * Findings 8, 9 and 10 through a real server: malformed bodies that were 500s (multipart without a boundary,
 * JSON nested 100,000 deep), attribute names that are also properties of every object or internal columns,
 * six-field (per-second) cron schedules, and ajv's array coercion (name: ["a"] read as "a"). Each is a 4xx
 * with a code and a sentence, and the service goes on answering.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attributeNameProblem } from '../src/store/attribute-names.js';
import { jsonDepth } from '../src/server/request-limits.js';
import { startServer, whileProbingHealth, type Server } from './attack-helpers.js';

let server: Server;
const post = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
const put = (body: unknown): RequestInit => ({ ...post(body), method: 'PUT' });

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-attack-http-'));
  server = await startServer((s) => ({ ...s, databasePath: path.join(dir, 'e.db') }));
  expect((await server.json('/corpora', post({ name: 'books' }))).status).toBe(201);
  const doc = new FormData();
  doc.append('file', new Blob(['Title: One']), 'one.txt');
  expect((await server.json('/corpora/books/documents', { method: 'POST', body: doc })).status).toBe(201);
});
afterAll(async () => server.close());

const healthy = async () => expect((await server.json('/health')).body).toEqual({ status: 'ok' });

describe('malformed requests are 4xx, not 500', () => {
  it('multipart without a boundary is invalid_multipart (400)', async () => {
    for (const contentType of ['multipart/form-data', 'multipart/form-data; charset=utf-8']) {
      const { result: r, worstMs } = await whileProbingHealth(server.url, () =>
        server.json('/corpora/books/documents', { method: 'POST', headers: { 'content-type': contentType }, body: 'file=abc' }),
      );
      console.log(`multipart without boundary (${contentType}): worst /health ${worstMs.toFixed(1)} ms`);
      expect(r.status, r.text).toBe(400);
      expect(r.body.error.code).toBe('invalid_multipart');
      expect(r.body.error.message).toMatch(/boundary/i);
    }
    await healthy();
  });

  it('POST /query with params nested 100,000 deep is json_too_deep (400); nested params are refused by the schema', async () => {
    for (const body of [
      `{"sql":"SELECT 1","params":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
      `{"sql":"SELECT 1","params":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`,
    ]) {
      const { result: r, worstMs } = await whileProbingHealth(server.url, () => server.json('/query', post(body)));
      console.log(`JSON nested 100,000 deep: worst /health ${worstMs.toFixed(1)} ms`);
      expect(r.status, r.text.slice(0, 300)).toBe(400);
      expect(r.body.error.code).toBe('json_too_deep');
    }
    const shallow = await server.json('/query', post({ sql: 'SELECT ?', params: [[1]] }));
    expect(shallow.status).toBe(400);
    expect(shallow.body.error.code).toBe('invalid_request');
    // Strings that merely contain brackets are not nesting.
    const ok = await server.json('/query', post({ sql: 'SELECT ? AS x', params: ['['.repeat(1000)] }));
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.rows).toEqual([['['.repeat(1000)]]);
    expect(jsonDepth('{"a":[{"b":"[[[["}]}')).toBe(3);
    await healthy();
  });
});

describe('attribute names', () => {
  it('refuses __proto__, constructor, other Object.prototype names and internal-column names', async () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '_document_id', '_x']) {
      const { result: r, worstMs } = await whileProbingHealth(server.url, () => server.json('/corpora/books/extractions', post({ mode: 'closed', attributes: [name] })));
      if (name === '__proto__') console.log(`attribute __proto__: worst /health ${worstMs.toFixed(1)} ms`);
      expect(r.status, `${name}: ${r.text}`).toBe(400);
      expect(r.body.error.message).toMatch(/reserved|may not start with "_"|letters, digits/);
      const label = await server.json('/corpora/books/labels', post({ document: 1, attribute: name, value: 'x' }));
      expect(label.status, `${name}: ${label.text}`).toBe(400);
    }
    expect(attributeNameProblem('publication date')).toBeNull();
    expect(attributeNameProblem('Constructor')).not.toBeNull();
    expect((await server.json('/corpora/books/labels', post({ document: 1, attribute: 'title', value: 'One' }))).status).toBe(200);
    await healthy();
  });
});

describe('schedules and coercion', () => {
  it('a six-field (per-second) cron is invalid_cron; five fields and nicknames are accepted', async () => {
    for (const cron of ['* * * * * *', '*/1 * * * * *', '0 0 2 * * * 2030']) {
      const { result: r, worstMs } = await whileProbingHealth(server.url, () => server.json('/corpora/books/schedule', put({ cron })));
      if (cron === '* * * * * *') console.log(`six-field cron: worst /health ${worstMs.toFixed(1)} ms`);
      expect(r.status, r.text).toBe(400);
      expect(r.body.error.code).toBe('invalid_cron');
      expect(r.body.error.message).toContain('five fields');
    }
    for (const cron of ['0 2 * * *', '* * * * *', '@hourly']) {
      const r = await server.json('/corpora/books/schedule', put({ cron }));
      expect(r.status, r.text).toBe(200);
    }
  });

  it('name: ["a"] is not coerced to "a"; query strings still coerce numbers', async () => {
    const r = await server.json('/corpora', post({ name: ['a'] }));
    expect(r.status, r.text).toBe(400);
    expect(r.body.error.code).toBe('invalid_request');
    expect((await server.json('/corpora')).body.items.map((c: any) => c.name)).toEqual(['books']);
    const page = await server.json('/corpora/books/documents?limit=1');
    expect(page.status, page.text).toBe(200);
    expect(page.body.items).toHaveLength(1);
  });
});
