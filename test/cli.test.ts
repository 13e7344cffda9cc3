import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../src/store/database.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The real `evaporate` launcher in a child process; resolves with the exit code instead of throwing. */
async function evaporate(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(root, 'bin', 'evaporate.js'), ...args], {
      cwd: root,
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
