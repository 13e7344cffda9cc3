import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/store/database.js';
import { materializeTable, columnsFor } from '../src/pipeline/materialize.js';
import { runQuery, toCsv } from '../src/pipeline/query.js';
import { EvaporateError } from '../src/errors.js';

let db: Db;
let dir: string;
const opts = { timeoutMs: 3000, maxRows: 50 };

async function refused(sql: string): Promise<EvaporateError> {
  try {
    await runQuery(db, { sql }, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(EvaporateError);
    return e as EvaporateError;
  }
  throw new Error(`not refused: ${sql}`);
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-query-'));
  db = openDatabase(path.join(dir, 'e.db'));
  const corpus = Number(db.prepare("INSERT INTO corpora (name) VALUES ('books')").run().lastInsertRowid);
  const attr = Number(db.prepare("INSERT INTO attributes (corpus_id, name, origin) VALUES (?, 'title', 'user')").run(corpus).lastInsertRowid);
  const ids: number[] = [];
  for (let i = 0; i < 120; i++) {
    ids.push(Number(db.prepare("INSERT INTO documents (corpus_id, filename, content_hash, kind, byte_size, text, status) VALUES (?, ?, ?, 'text', 1, ?, 'ready')").run(corpus, `d${i}`, `h${i}`, `Title: Book ${i}`).lastInsertRowid));
  }
  db.prepare("INSERT INTO llm_calls (request_hash, provider, model, prompt_tokens, completion_tokens, response) VALUES ('h', 'p', 'm', 1, 1, 'secret')").run();
  materializeTable(db, {
    corpusId: corpus,
    table: 'corpus_books_1',
    jobId: null,
    columns: columnsFor([{ id: attr, name: 'title', type: 'text' }]),
    documentIds: ids,
    cells: ids.map((d, i) => ({ documentId: d, attributeId: attr, value: `Book ${i}`, origin: 'functions', confidence: 0.9, functions: ['1'], span: [7, 7 + `Book ${i}`.length] })),
  });
});
afterAll(() => {
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('user SQL', () => {
  it('reads result tables with a row cap and paging, as JSON rows or CSV', async () => {
    const first = await runQuery(db, { sql: 'SELECT _document_id, title FROM corpus_books_1 ORDER BY _document_id', limit: 100 }, opts);
    expect(first.columns).toEqual(['_document_id', 'title']);
    expect(first.rows).toHaveLength(50); // capped at maxRows
    expect(first.hasMore).toBe(true);
    const second = await runQuery(db, { sql: 'SELECT title FROM corpus_books_1 ORDER BY _document_id', offset: first.nextOffset!, limit: 50 }, opts);
    expect(second.rows[0]).toEqual(['Book 50']);
    const last = await runQuery(db, { sql: 'SELECT title FROM corpus_books_1 ORDER BY _document_id', offset: 100 }, opts);
    expect(last.rows).toHaveLength(20);
    expect(last.hasMore).toBe(false);
    const csv = toCsv(await runQuery(db, { sql: "SELECT title, 'a,\"b' AS x FROM corpus_books_1 LIMIT 1" }, opts));
    expect(csv).toBe('title,x\r\nBook 0,"a,""b"\r\n');
    const joined = await runQuery(db, { sql: 'SELECT p.span_start, p.span_end FROM corpus_books_1__provenance p JOIN documents d ON d.id = p._document_id LIMIT 1' }, opts);
    expect(joined.rows[0]).toEqual([7, 13]);
  });

  it('refuses writes, ATTACH, PRAGMA, extensions and internal tables with clear errors', async () => {
    expect((await refused('DELETE FROM corpus_books_1')).code).toBe('query_not_read_only');
    expect((await refused('WITH x AS (SELECT 1) INSERT INTO corpora (name) SELECT 1 FROM x')).code).toBe('query_not_read_only');
    expect((await refused("ATTACH DATABASE '/etc/passwd' AS p")).code).toBe('query_forbidden');
    expect((await refused('PRAGMA journal_mode = DELETE')).code).toBe('query_forbidden');
    expect((await refused("SELECT load_extension('/tmp/x.so')")).code).toBe('query_forbidden');
    expect((await refused('SELECT 1; DROP TABLE corpora')).code).toBe('query_multiple_statements');
    const secret = await refused('SELECT response FROM llm_calls');
    expect(secret.code).toBe('query_forbidden');
    expect(secret.message).toMatch(/llm_calls/);
    // An alias or a subquery does not hide the table: the check reads which b-trees the statement opens.
    expect((await refused('SELECT * FROM (SELECT * FROM "LLM_CALLS") AS t')).code).toBe('query_forbidden');
    expect((await refused('SELECT nonsense FROM')).code).toBe('query_invalid');
    expect(db.prepare('SELECT count(*) FROM corpus_books_1').pluck().get()).toBe(120);
  });

  it('cuts off a runaway recursive query at the time limit', async () => {
    const t0 = Date.now();
    const e = await (async () => {
      try {
        await runQuery(db, { sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c' }, { timeoutMs: 700, maxRows: 10 });
      } catch (err) {
        return err as EvaporateError;
      }
      throw new Error('not stopped');
    })();
    expect(e.code).toBe('query_timeout');
    expect(e.status).toBe(408);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
