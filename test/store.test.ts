import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../src/store/database.js';
import { migrations } from '../src/store/migrations.js';

describe('store', () => {
  it('applies migrations once, in WAL mode, and keeps them across reopen', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-store-'));
    const file = path.join(dir, 'sub', 'e.db');
    const db = openDatabase(file);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    const versions = db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all();
    expect(versions).toEqual(migrations.map((m) => m.version).sort((a, b) => a - b));
    db.prepare("INSERT INTO corpora (name) VALUES ('books')").run();
    db.close();
    const again = openDatabase(file);
    expect(again.prepare('SELECT count(*) FROM schema_migrations').pluck().get()).toBe(migrations.length);
    expect(again.prepare('SELECT name FROM corpora').pluck().all()).toEqual(['books']);
    again.close();
  });

  it('enforces one content hash per corpus and cascades deletes', () => {
    const db = openDatabase(':memory:');
    const corpus = db.prepare("INSERT INTO corpora (name) VALUES ('c')").run().lastInsertRowid;
    const insert = db.prepare(
      "INSERT INTO documents (corpus_id, filename, content_hash, kind, byte_size, status) VALUES (?, 'a', 'h', 'text', 1, 'ready')",
    );
    insert.run(corpus);
    expect(() => insert.run(corpus)).toThrow(/UNIQUE/);
    db.prepare('DELETE FROM corpora WHERE id = ?').run(corpus);
    expect(db.prepare('SELECT count(*) FROM documents').pluck().get()).toBe(0);
  });
});
