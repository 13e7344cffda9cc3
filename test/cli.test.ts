import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/store/database.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';
import { scriptModel, swdeDir, swdeGold } from './pipeline-script.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The real `evaporate` launcher in a child process; resolves with the exit code instead of throwing. */
async function evaporate(args: string[], env: Record<string, string> = {}, cwd = root) {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(root, 'bin', 'evaporate.js'), ...args], {
      cwd,
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('evaporate CLI', () => {
  it('ingests a folder into a new corpus, reports bad files, and lists and shows what landed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-cli-'));
    const db = path.join(dir, 'e.db');
    const docs = path.join(dir, 'docs');
    fs.mkdirSync(path.join(docs, 'sub'), { recursive: true });
    fs.copyFileSync(path.join(root, 'fixtures', 'ingest', 'report.pdf'), path.join(docs, 'report.pdf'));
    fs.writeFileSync(path.join(docs, 'sub', 'page.html'), '<html><body><h1>Title</h1><ul><li>a</li><li>b</li></ul></body></html>');
    fs.writeFileSync(path.join(docs, 'broken.txt'), Buffer.from([0x61, 0xff, 0xfe, 0x62]));
    fs.writeFileSync(path.join(docs, '.hidden'), 'skipped');

    const first = await evaporate(['--db', db, 'ingest', 'reports', docs]);
    expect(first.code).toBe(1); // a file failed
    expect(first.stderr).toContain('2 stored, 0 duplicates, 1 failed');
    expect(first.stderr).toMatch(/broken\.txt: .*not valid UTF-8.*\[invalid_encoding\]/);

    const second = await evaporate(['--db', db, 'ingest', 'reports', path.join(docs, 'report.pdf')]);
    expect(second.code).toBe(0);
    expect(second.stderr).toContain('0 stored, 1 duplicates, 0 failed');

    const corpora = await evaporate(['--db', db, 'corpora']);
    expect(corpora.stdout).toMatch(/reports\s+2\s+1/);

    const list = await evaporate(['--db', db, 'documents', 'list', 'reports', '--json']);
    const page = JSON.parse(list.stdout) as { items: { id: number; filename: string; status: string }[] };
    expect(page.items.map((d) => [path.basename(d.filename), d.status])).toEqual([
      ['broken.txt', 'failed'],
      ['report.pdf', 'ready'],
      ['page.html', 'ready'],
    ]);
    const html = page.items.find((d) => d.filename.endsWith('page.html'))!;
    const shown = await evaporate(['--db', db, 'documents', 'show', String(html.id)]);
    expect(shown.stdout).toBe('Title\n\n- a\n- b\n');

    // The CLI wrote through the same store the server reads.
    const conn = openDatabase(db);
    expect(conn.prepare("SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.status = 'ready'").pluck().get()).toBeGreaterThanOrEqual(2);
    conn.close();
  });

  it('prints a sentence, not a stack, for a missing corpus or path', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-cli-'));
    const missing = await evaporate(['--db', path.join(dir, 'e.db'), 'documents', 'list', 'nope']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('error: There is no corpus "nope". [corpus_not_found]');
    const noPath = await evaporate(['--db', path.join(dir, 'e.db'), 'ingest', 'c', path.join(dir, 'absent')]);
    expect(noPath.stderr).toContain('[path_not_found]');
  });

  it('refuses to serve off loopback without an API key', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-cli-'));
    const res = await evaporate(['--db', path.join(dir, 'e.db'), 'serve', '--host', '0.0.0.0'], { EVAPORATE_API_KEY: '' });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('[api_key_required]');
  });
});

describe('evaporate CLI: a newcomer\'s extraction', () => {
  let fake: FakeOpenAI;
  let dir: string;
  let pages: string;
  let gold: string;
  beforeAll(async () => {
    fake = await startFakeOpenAI();
    scriptModel(fake);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-cli-extract-'));
    pages = path.join(dir, 'pages');
    fs.mkdirSync(pages);
    for (let i = 0; i < 24; i++) fs.copyFileSync(path.join(swdeDir, 'pages', `${String(i).padStart(4, '0')}.htm`), path.join(pages, `${String(i).padStart(4, '0')}.htm`));
    // gold for two attributes, in the plain JSON format
    gold = path.join(dir, 'gold.json');
    const byPage: Record<string, Record<string, string[]>> = {};
    for (const a of ['isbn_13', 'publisher']) for (const [page, values] of swdeGold.get(a)!) if (Number(page) < 24) (byPage[`${page}.htm`] ??= {})[a] = values;
    fs.writeFileSync(gold, JSON.stringify(byPage));
  });
  afterAll(async () => {
    await fake?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  const model = () => ({ OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'test', EVAPORATE_MODEL: 'fake-model' });

  it('ingests a folder, extracts two columns, queries them, and scores a run against gold with its cost', async () => {
    const db = path.join(dir, 'e.db');
    expect((await evaporate(['--db', db, 'ingest', 'books', pages])).code).toBe(0);
    const extract = await evaporate(['--db', db, 'extract', 'books', '--attributes', 'isbn_13,publisher', '--json'], model());
    expect(extract.code, extract.stderr).toBe(0);
    const { result, llm } = JSON.parse(extract.stdout) as { result: { table: string; rows: number }; llm: { calls: number } };
    expect(result.rows).toBe(24);
    expect(llm.calls).toBeGreaterThan(0);
    const q = await evaporate(['--db', db, 'query', `SELECT t.isbn_13 FROM "${result.table}" t JOIN documents d ON d.id = t._document_id ORDER BY d.filename LIMIT 3`, '--json']);
    expect(q.code, q.stderr).toBe(0);
    expect((JSON.parse(q.stdout) as { rows: string[][] }).rows).toEqual(['0000', '0001', '0002'].map((p) => [swdeGold.get('isbn_13')!.get(p)![0]]));

    const evaluated = await evaporate(['--db', path.join(dir, 'eval.db'), 'eval', '--corpus', pages, '--gold', gold], model());
    expect(evaluated.code, evaluated.stderr).toBe(0);
    expect(evaluated.stdout).toMatch(/isbn_13\s.*1\.000/);
    expect(evaluated.stdout).toMatch(/mean text F1: (0\.9\d\d|1\.000)/);
    expect(evaluated.stdout).toMatch(/cost: \d+ LLM calls.*direct extraction of all 24 documents would send \d+ prompt tokens for the same 2 attributes/);
  });

  it('says which variables to set when no model is configured', async () => {
    const db = path.join(dir, 'none.db');
    await evaporate(['--db', db, 'ingest', 'books', pages]);
    const r = await evaporate(['--db', db, 'extract', 'books', '--attributes', 'isbn_13'], { OPENAI_BASE_URL: '', OPENAI_API_KEY: '', EVAPORATE_MODEL: '' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/EVAPORATE_MODEL_SYNTHESIS or EVAPORATE_MODEL.*\[llm_not_configured\]/s);
  });
});

describe('evaporate CLI: pipes and the names people give documents', () => {
  let dir: string;
  let db: string;
  const page = (i: number) => path.join(swdeDir, 'pages', `${String(i).padStart(4, '0')}.htm`);
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-cli-names-'));
    db = path.join(dir, 'e.db');
    // two folders that both hold a 0000.htm (different pages), ingested by a relative path from `dir`
    for (const [folder, files] of [['a', [0, 2]], ['b', [1]]] as const) {
      fs.mkdirSync(path.join(dir, 'docs', folder), { recursive: true });
      files.forEach((i, k) => fs.copyFileSync(page(i), path.join(dir, 'docs', folder, k === 0 ? '0000.htm' : `${String(i).padStart(4, '0')}.htm`)));
    }
    expect((await evaporate(['--db', db, 'ingest', 'books', 'docs'], {}, dir)).code).toBe(0);
    expect((await evaporate(['--db', db, 'ingest', 'many', path.join(swdeDir, 'pages')])).code).toBe(0);
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stops quietly when the reader of its output goes away (documents list | head)', async () => {
    // The reading end is closed before the command writes anything: every write fails with EPIPE.
    const child = spawn(process.execPath, [path.join(root, 'bin', 'evaporate.js'), '--db', db, 'documents', 'list', 'many'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    // and as a person types it
    const head = await run('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" bin/evaporate.js --db "${db}" documents list many | head -1`], { cwd: root });
    expect(head.stdout).toMatch(/^id\s+kind\s+status/);
    expect(head.stderr).toBe('');
  });

  it('label set finds the document by id, file name, or the path it was ingested from, and refuses an ambiguous name', async () => {
    const list = JSON.parse((await evaporate(['--db', db, 'documents', 'list', 'books', '--json'])).stdout) as { items: { id: number; filename: string }[] };
    const id = (f: string) => list.items.find((d) => d.filename === f)!.id;
    expect(list.items.map((d) => d.filename).sort()).toEqual(['docs/a/0000.htm', 'docs/a/0002.htm', 'docs/b/0000.htm']);

    const byFileName = await evaporate(['--db', db, 'label', 'set', 'books', '0002.htm', 'title', 'Two']);
    expect(byFileName.stdout).toContain(`docs/a/0002.htm (#${id('docs/a/0002.htm')}) title = "Two"`);
    // the relative path it was ingested by, from the folder it was ingested in
    const byPath = await evaporate(['--db', db, 'label', 'set', 'books', './docs/b/0000.htm', 'title', 'B'], {}, dir);
    expect(byPath.code, byPath.stderr).toBe(0);
    expect(byPath.stdout).toContain(`(#${id('docs/b/0000.htm')})`);
    // the same file by its absolute path, from anywhere
    const byAbsolute = await evaporate(['--db', db, 'label', 'set', 'books', path.join(dir, 'docs', 'a', '0000.htm'), 'title', 'A']);
    expect(byAbsolute.stdout).toContain(`(#${id('docs/a/0000.htm')})`);
    const byId = await evaporate(['--db', db, 'label', 'set', 'books', String(id('docs/a/0002.htm')), 'title', 'Two again']);
    expect(byId.stdout).toContain('title = "Two again"');

    const ambiguous = await evaporate(['--db', db, 'label', 'set', 'books', '0000.htm', 'title', 'X']);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr.trim()).toBe(
      `error: "0000.htm" names 2 documents in corpus "books" (#${id('docs/a/0000.htm')} docs/a/0000.htm, #${id('docs/b/0000.htm')} docs/b/0000.htm); give the id or a longer path. [ambiguous_document]`,
    );
    const missing = await evaporate(['--db', db, 'label', 'set', 'books', 'nope.htm', 'title', 'X']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/has no document "nope\.htm": give its id .*\[document_not_found\]/);

    const labels = JSON.parse((await evaporate(['--db', db, 'label', 'list', 'books', '--json'])).stdout) as { filename: string; values: string[] }[];
    expect(Object.fromEntries(labels.map((l) => [l.filename, l.values]))).toEqual({
      'docs/a/0000.htm': ['A'],
      'docs/a/0002.htm': ['Two again'],
      'docs/b/0000.htm': ['B'],
    });
  });
});
