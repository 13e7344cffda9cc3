/**
 * User SQL over the result tables. Each query runs in a child process on its own read-only connection and
 * is killed at the time limit: a runaway recursive CTE spins inside SQLite's C code, where a worker thread's
 * terminate() never lands (it only interrupts JavaScript), but SIGKILL always does.
 *
 * Layers of refusal, each with a clear error: a lexical check (one statement, starts with SELECT/WITH/VALUES,
 * no ATTACH/DETACH/PRAGMA/load_extension), then in the child a read-only connection with query_only set,
 * stmt.readonly and stmt.reader, and an authorizer-like check of EXPLAIN's OpenRead opcodes: every b-tree the
 * statement opens must belong to an allowed table of the main database.
 */
import { execFile, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Db } from '../store/database.js';
import { EvaporateError } from '../errors.js';
import { renderListColumns } from './list-values.js';

export interface QueryRequest {
  sql: string;
  params?: unknown[] | Record<string, unknown>;
  offset?: number;
  limit?: number;
}

export interface QueryResult {
  columns: string[];
  rows: unknown[][];
  offset: number;
  limit: number;
  hasMore: boolean;
  nextOffset: number | null;
  elapsedMs: number;
}

/** Tables of the core model a user may read next to the result tables (no LLM cache, jobs or secrets). */
export const CATALOG_TABLES = ['corpora', 'documents', 'attributes', 'functions', 'extractions', 'result_tables'];

/** Strips comments and string/identifier literals so keyword checks see only SQL structure. */
export function sqlSkeleton(sql: string): string {
  return sql.replace(/--[^\n]*|\/\*[\s\S]*?(\*\/|$)|'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]/g, (m) => (m.startsWith("'") ? "''" : m.startsWith('-') || m.startsWith('/') ? ' ' : '"x"'));
}

/** The names written as quoted identifiers ("x", `x`, [x]), which the skeleton hides from the keyword checks. */
function quotedIdentifiers(sql: string): string[] {
  const names: string[] = [];
  sql.replace(/--[^\n]*|\/\*[\s\S]*?(\*\/|$)|'(?:[^']|'')*'|"((?:[^"]|"")*)"|`([^`]*)`|\[([^\]]*)\]/g, (m, _c, dq, bq, sq) => {
    const name = dq !== undefined ? dq.replace(/""/g, '"') : (bq ?? sq);
    if (name !== undefined) names.push(name.toLowerCase());
    return m;
  });
  return names;
}

/**
 * The table-valued functions a query may use: they read only their argument (a list cell's JSON array).
 * Every other virtual table (dbstat, the pragma_* functions) reads the database's schema, path or pages.
 */
const JSON_TABLE_FUNCTIONS = /\bjson_(each|tree)\s*\(/;

export function checkQueryText(sql: string): void {
  if (typeof sql !== 'string' || sql.trim() === '') throw new EvaporateError('query_empty', 'Send the SQL to run in "sql".', 400);
  if (sql.length > 100_000) throw new EvaporateError('query_too_long', 'The SQL text is longer than 100,000 characters.', 400);
  const skeleton = sqlSkeleton(sql).toLowerCase();
  // A quoted name is the same table to SQLite ("dbstat" is dbstat): the keyword checks read those names too.
  const statement = skeleton.trim().replace(/;\s*$/, '');
  const body = [statement, ...quotedIdentifiers(sql)].join(' ');
  if (statement.includes(';')) throw new EvaporateError('query_multiple_statements', 'Send one SQL statement at a time.', 400);
  for (const [pattern, what] of [
    [/\battach\b/, 'ATTACH'],
    [/\bdetach\b/, 'DETACH'],
    [/\bpragma\b/, 'PRAGMA statements'],
    [/\bpragma_\w+/, 'Table-valued pragmas (pragma_table_info, pragma_database_list, ...)'],
    [/\bdbstat\b/, 'The dbstat virtual table'],
    [/\bsqlite_(dbpage|stmt)\b/, 'The sqlite_dbpage and sqlite_stmt virtual tables'],
    [/\bload_extension\b/, 'load_extension()'],
    [/\bvacuum\b/, 'VACUUM'],
  ] as const) {
    if (pattern.test(body)) throw new EvaporateError('query_forbidden', `${what} is not allowed in queries: the query connection is read-only and sees only the result tables.`, 400);
  }
  if (!/^\s*(select|with|values)\b/.test(statement))
    throw new EvaporateError('query_not_read_only', 'Only read-only queries (SELECT, WITH ... SELECT, VALUES) can be run; writes and schema changes are refused.', 400);
}

export function allowedTables(db: Db): string[] {
  const rows = db.prepare('SELECT table_name, provenance_table FROM result_tables').all() as { table_name: string; provenance_table: string }[];
  return [...CATALOG_TABLES, ...rows.flatMap((r) => [r.table_name, r.provenance_table])];
}

const betterSqlitePath = createRequire(import.meta.url).resolve('better-sqlite3');

// Plain CommonJS run with `node -e`: no loader, so it works the same under tsx, vitest and plain node.
const CHILD = String.raw`
const Database = require(process.env.EVAPORATE_BETTER_SQLITE3);
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const send = (m) => process.stdout.write(JSON.stringify(m), () => process.exit(0));
  const fail = (code, message) => send({ error: { code, message } });
  let req;
  try { req = JSON.parse(input); } catch { return fail('query_internal', 'Bad request to the query process.'); }
  let db;
  try {
    db = new Database(req.file, { readonly: true, fileMustExist: true });
    db.pragma('query_only = 1');
    db.pragma('busy_timeout = 2000');
  } catch (e) { return fail('query_unavailable', 'The database cannot be opened for reading: ' + e.message); }
  const nomem = (e) => e && e.code === 'SQLITE_NOMEM';
  const tooLarge = () => fail('query_too_large', 'The query needed more than the ' + req.memoryMb + ' MB the query process may use (EVAPORATE_QUERY_MEMORY_MB); add a LIMIT or read less per row.');
  let stmt;
  try { stmt = db.prepare(req.sql); } catch (e) { return nomem(e) ? tooLarge() : fail('query_invalid', 'The SQL does not compile: ' + e.message); }
  if (!stmt.readonly) return fail('query_not_read_only', 'Only read-only queries can be run; this statement would change the database.');
  if (!stmt.reader) return fail('query_not_read_only', 'The statement returns no rows; only queries that read data can be run.');
  try {
    const roots = new Map();
    for (const r of db.prepare("SELECT rootpage, tbl_name FROM sqlite_schema WHERE rootpage > 0").all()) roots.set(r.rootpage, r.tbl_name);
    const allowed = new Set(req.allowed.map((t) => t.toLowerCase()));
    const plan = db.prepare('EXPLAIN ' + req.sql).raw(true).all(...(req.params === undefined ? [] : [req.params]));
    for (const op of plan) {
      const opcode = op[1];
      // A virtual table (dbstat, a table-valued pragma, json_each, ...) is read through VOpen, not a b-tree of
      // an allowed table: some list the schema of every table, the database's file path, or scan the whole file.
      // Only json_each/json_tree pass (req.jsonFunctions, see runQuery): they read nothing but their argument.
      if (opcode === 'VOpen' && !req.jsonFunctions) return fail('query_forbidden', 'Virtual tables and table-valued functions other than json_each() and json_tree() (dbstat, pragma_table_info(), ...) cannot be queried; queries may read the result tables, their provenance and ' + req.catalog.join(', ') + '.');
      if (opcode !== 'OpenRead' && opcode !== 'OpenWrite' && opcode !== 'ReopenIdx') continue;
      if (op[4] !== 0) return fail('query_forbidden', 'Queries may read only the main database.');
      if (op[3] === 1) continue; // sqlite_schema: listing tables is fine
      const table = roots.get(op[3]);
      if (table === undefined || !allowed.has(String(table).toLowerCase()))
        return fail('query_forbidden', 'Table "' + (table ?? '?') + '" cannot be queried; queries may read the result tables, their provenance and ' + req.catalog.join(', ') + '.');
    }
  } catch (e) { return fail('query_invalid', 'The query cannot be checked: ' + e.message); }
  const columns = stmt.columns().map((c) => c.name);
  const rows = [];
  let hasMore = false;
  let skipped = 0;
  try {
    const it = stmt.raw(true).iterate(...(req.params === undefined ? [] : [req.params]));
    for (const row of it) {
      if (skipped < req.offset) { skipped++; continue; }
      if (rows.length === req.limit) { hasMore = true; break; }
      rows.push(row.map((v) => (Buffer.isBuffer(v) ? { base64: v.toString('base64') } : typeof v === 'bigint' ? v.toString() : v)));
    }
  } catch (e) { return nomem(e) ? tooLarge() : fail('query_failed', 'The query failed: ' + e.message); }
  send({ columns, rows, hasMore });
});
`;

export interface QueryOptions {
  timeoutMs: number;
  maxRows: number;
  /** All the memory the query process may hold (JavaScript heap and SQLite together), MB. */
  memoryMb?: number;
  /** Queries running at once in this process; past it a query is refused with too_many_queries (429). */
  maxConcurrent?: number;
}

let runningQueries = 0;

/**
 * The query process's memory is capped by the kernel (RLIMIT_DATA, which Linux applies to every private
 * anonymous mapping: V8's heap and SQLite's allocations alike), so SQLite gets NULL from malloc and answers
 * SQLITE_NOMEM. SQLite's own hard_heap_limit pragma is no use here: better-sqlite3 builds SQLite with
 * SQLITE_DEFAULT_MEMSTATUS=0, and without memory statistics that limit is never checked. Elsewhere (macOS)
 * the limit is not enforced and only the heap cap and the time limit apply.
 */
function heapFlag(memoryMb: number): string {
  return `--max-old-space-size=${Math.max(32, Math.min(256, Math.floor(memoryMb / 2)))}`;
}

let startupDataKb: Promise<number> | undefined;

/**
 * The data segment a bare Node process holds before it does anything: address space V8 reserves and never
 * touches (about 50 MB on Node 20, 575 MB on Node 24). RLIMIT_DATA counts it, so the query's allowance goes on
 * top of it; a fixed limit would leave Node 24 unable to start. Read once per process, from a child run the
 * same way as the query process.
 */
function nodeStartupDataKb(memoryMb: number): Promise<number> {
  startupDataKb ??= new Promise((resolve) => {
    const probe = "process.stdout.write(String(/VmData:\\s*(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]))";
    execFile(process.execPath, [heapFlag(memoryMb), '-e', probe], { env: {}, timeout: 10_000 }, (error, stdout) => {
      const kb = Number(stdout);
      // Without a reading, assume the largest reservation seen (Node 24) rather than a limit Node cannot start under.
      resolve(!error && Number.isFinite(kb) && kb > 0 ? kb : 600 * 1024);
    });
  });
  return startupDataKb;
}

async function queryProcess(memoryMb: number): Promise<{ command: string; args: string[] }> {
  const node = [heapFlag(memoryMb), '-e', CHILD];
  if (process.platform !== 'linux') return { command: process.execPath, args: node };
  const limitKb = (await nodeStartupDataKb(memoryMb)) + Math.floor(memoryMb * 1024);
  return { command: '/bin/sh', args: ['-c', `ulimit -d ${limitKb} && exec "$0" "$@"`, process.execPath, ...node] };
}

/** Error text never names where the database lives. */
function withoutPaths(message: string, file: string): string {
  if (!path.isAbsolute(file)) return message;
  const dir = path.dirname(file);
  const named = message.split(file).join('<database>');
  return dir.length > 1 ? named.split(dir).join('<data directory>') : named;
}

export async function runQuery(db: Db, request: QueryRequest, options: QueryOptions): Promise<QueryResult> {
  checkQueryText(request.sql);
  const maxConcurrent = options.maxConcurrent ?? 4;
  if (runningQueries >= maxConcurrent) {
    throw new EvaporateError('too_many_queries', `${maxConcurrent} queries are already running (EVAPORATE_QUERY_CONCURRENCY); try again when one has finished.`, 429);
  }
  runningQueries++;
  try {
    return await runQueryProcess(db, request, options);
  } catch (error) {
    if (error instanceof EvaporateError && db.name) throw new EvaporateError(error.code, withoutPaths(error.message, db.name), error.status, error.details);
    throw error;
  } finally {
    runningQueries--;
  }
}

async function runQueryProcess(db: Db, request: QueryRequest, options: QueryOptions): Promise<QueryResult> {
  const file = db.name;
  if (!file || file === ':memory:' || db.memory)
    throw new EvaporateError('query_unavailable', 'SQL queries need a database file (the in-memory database cannot be opened read-only by a second connection).', 409);
  const offset = Math.max(0, Math.floor(Number(request.offset ?? 0)) || 0);
  const limit = Math.min(options.maxRows, Math.max(1, Math.floor(Number(request.limit ?? options.maxRows)) || options.maxRows));
  const memoryMb = options.memoryMb ?? 512;
  // Virtual tables are opened only where the text names json_each()/json_tree(): checkQueryText has refused every
  // other virtual table by name, quoted or not, so a VOpen in the plan is then one of those two.
  const jsonFunctions = JSON_TABLE_FUNCTIONS.test(sqlSkeleton(request.sql).toLowerCase());
  const payload = JSON.stringify({ file, sql: request.sql, params: request.params, offset, limit, allowed: allowedTables(db), catalog: CATALOG_TABLES, memoryMb, jsonFunctions });
  const { command, args } = await queryProcess(memoryMb);
  const t0 = performance.now();
  const out = await new Promise<{ columns: string[]; rows: unknown[][]; hasMore: boolean }>((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { EVAPORATE_BETTER_SQLITE3: betterSqlitePath, PATH: process.env.PATH ?? '' },
    });
    const chunks: Buffer[] = [];
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString().slice(0, 2000)));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new EvaporateError('query_unavailable', `The query process could not start: ${e.message}`, 500));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) return reject(new EvaporateError('query_timeout', `The query ran longer than ${options.timeoutMs} ms and was stopped.`, 408));
      const text = Buffer.concat(chunks).toString('utf8');
      let msg: any;
      try {
        msg = JSON.parse(text);
      } catch {
        const oom = /heap out of memory|Allocation failed|out of memory|Cannot allocate/i.test(stderr);
        return reject(
          oom
            ? new EvaporateError('query_too_large', 'The query result is too large for the query memory limit; add a LIMIT or select fewer columns.', 413)
            : new EvaporateError('query_failed', `The query process ended without an answer (${signal ?? code}).`, 500),
        );
      }
      if (msg.error) return reject(new EvaporateError(msg.error.code, msg.error.message, msg.error.code === 'query_unavailable' ? 409 : 400));
      resolve(msg);
    });
    child.stdin.end(payload);
  });
  renderListColumns(db.prepare('SELECT table_name, columns FROM result_tables').all() as { table_name: string; columns: string }[], request.sql, out);
  return { ...out, offset, limit, nextOffset: out.hasMore ? offset + out.rows.length : null, elapsedMs: Math.round(performance.now() - t0) };
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(result: Pick<QueryResult, 'columns' | 'rows'>): string {
  return [result.columns, ...result.rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}
