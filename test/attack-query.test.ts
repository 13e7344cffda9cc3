/**
 * Findings 5 and 7: user SQL that holds gigabytes in SQLite (outside the JavaScript heap), many runaway
 * queries at once, and virtual tables / table-valued pragmas that slip past the table allowlist (one of them
 * shows the database's host path). Each is refused with a clean error, and queries keep working after.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/store/database.js';
import { runQuery } from '../src/pipeline/query.js';
import { EvaporateError } from '../src/errors.js';
import { worstLoopDelay } from './attack-helpers.js';

let db: Db;
let dir: string;
const opts = { timeoutMs: 4000, maxRows: 50, memoryMb: 256, maxConcurrent: 2 };

async function refusal(sql: string, options = opts): Promise<EvaporateError> {
  try {
    await runQuery(db, { sql }, options);
  } catch (e) {
    expect(e).toBeInstanceOf(EvaporateError);
    return e as EvaporateError;
  }
  throw new Error(`not refused: ${sql}`);
}

const stillAnswers = async () => expect((await runQuery(db, { sql: 'SELECT count(*) FROM corpora' }, opts)).rows).toEqual([[1]]);

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-attack-query-'));
  db = openDatabase(path.join(dir, 'e.db'));
  db.prepare("INSERT INTO corpora (name) VALUES ('books')").run();
  db.prepare("INSERT INTO llm_calls (request_hash, provider, model, prompt_tokens, completion_tokens, response) VALUES ('h', 'p', 'm', 1, 1, 'secret')").run();
});
afterAll(() => {
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('queries under attack', () => {
  it('refuses virtual tables and table-valued pragmas, however they are spelled, and never names the host path', async () => {
    const { worstMs } = await worstLoopDelay(() => refusal('SELECT * FROM pragma_quick_check'));
    console.log(`pragma_quick_check: worst event-loop delay ${worstMs.toFixed(1)} ms`);
    for (const sql of [
      'SELECT * FROM dbstat',
      "SELECT * FROM pragma_table_info('llm_calls')",
      'SELECT * FROM pragma_database_list',
      'SELECT * FROM pragma_quick_check',
      'SELECT * FROM "dbstat"',
      'SELECT * FROM "pragma_database_list"',
      'SELECT * FROM [pragma_table_info](\'llm_calls\')',
      'SELECT * FROM `Pragma_Database_List`',
      // json_each is allowed, but it cannot carry another virtual table in with it
      "SELECT * FROM json_each('[1]'), \"dbstat\"",
      "WITH unused AS (SELECT * FROM json_each('[]')) SELECT * FROM \"dbstat\"",
    ]) {
      const e = await refusal(sql);
      expect(e.code, sql).toBe('query_forbidden');
      expect(e.message).not.toContain(dir);
    }
    // The JSON table-valued functions read only their argument: they unnest a list column.
    expect((await runQuery(db, { sql: "SELECT value FROM json_each('[\"a\",\"b\"]')" }, opts)).rows).toEqual([['a'], ['b']]);
    // An error SQLite words with the file name still reaches the user without it.
    const e = await refusal('SELECT * FROM no_such_table');
    expect(e.message).not.toContain(dir);
    await stillAnswers();
  }, 60_000);

  it('caps SQLite memory in the query process: three 400 MB blobs are query_too_large, fast', async () => {
    const t0 = performance.now();
    const { result: e, worstMs } = await worstLoopDelay(() =>
      refusal('SELECT length(a) + length(b) + length(c) FROM (SELECT randomblob(400000000) AS a, randomblob(400000000) AS b, randomblob(400000000) AS c)'),
    );
    console.log(`3 x 400 MB blobs: worst event-loop delay ${worstMs.toFixed(1)} ms`);
    expect(e.code).toBe('query_too_large');
    expect(e.message).toContain('EVAPORATE_QUERY_MEMORY_MB');
    expect(performance.now() - t0).toBeLessThan(opts.timeoutMs);
    // Within the cap, a big value is fine.
    expect((await runQuery(db, { sql: 'SELECT length(randomblob(20000000))' }, opts)).rows).toEqual([[20_000_000]]);
    await stillAnswers();
  }, 60_000);

  it('runs at most maxConcurrent queries: the rest get too_many_queries (429) at once', async () => {
    const runaway = 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r';
    const short = { ...opts, timeoutMs: 1500 };
    const { result: settled, worstMs } = await worstLoopDelay(() => Promise.allSettled(Array.from({ length: 6 }, () => runQuery(db, { sql: runaway }, short))));
    console.log(`6 runaway queries at once: worst event-loop delay ${worstMs.toFixed(1)} ms`);
    const codes = settled.map((s) => (s.status === 'rejected' ? (s.reason as EvaporateError).code : 'ok'));
    expect(codes.filter((c) => c === 'query_timeout')).toHaveLength(2);
    expect(codes.filter((c) => c === 'too_many_queries')).toHaveLength(4);
    const tooMany = settled.find((s) => s.status === 'rejected' && (s.reason as EvaporateError).code === 'too_many_queries') as PromiseRejectedResult;
    expect((tooMany.reason as EvaporateError).status).toBe(429);
    await stillAnswers();
  }, 60_000);
});
