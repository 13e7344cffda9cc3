/**
 * The corpus pass's batches: cut by a document count and a byte budget, from sizes the store reads without the
 * texts, the same way every time. Job-level behaviour (a resume with byte-cut batches, the sharded pass over the
 * same cut) is in jobs-extract-crash.test.ts and shards-queue.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { ingestFiles } from '../src/ingest/ingest.js';
import { checkBatchOutputs, cutBatches, sliceBatches } from '../src/pipeline/batches.js';
import * as repo from '../src/pipeline/repository.js';
import { seededRandom } from '../src/random.js';
import { openDatabase } from '../src/store/database.js';
import { swdeDir } from './pipeline-script.js';

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe('cutBatches', () => {
  it('closes a batch at the document count or before the byte budget would be passed', () => {
    expect(cutBatches([1, 1, 1, 1, 1], { documents: 2, bytes: 100 })).toEqual([2, 2, 1]);
    expect(cutBatches([40, 40, 40, 10, 10, 90], { documents: 10, bytes: 100 })).toEqual([2, 3, 1]);
    // Exactly at the budget still fits.
    expect(cutBatches([50, 50, 50], { documents: 10, bytes: 100 })).toEqual([2, 1]);
    expect(cutBatches([], { documents: 10, bytes: 100 })).toEqual([]);
  });

  it('gives a document larger than the budget a batch of its own, wherever it stands', () => {
    expect(cutBatches([10, 500, 10], { documents: 10, bytes: 100 })).toEqual([1, 1, 1]);
    expect(cutBatches([500], { documents: 10, bytes: 100 })).toEqual([1]);
    expect(cutBatches([500, 500, 20, 30], { documents: 10, bytes: 100 })).toEqual([1, 1, 2]);
  });

  it('on random corpora: deterministic, covers every document once, within both limits, and each batch as full as the limits allow', () => {
    const random = seededRandom(7);
    for (let trial = 0; trial < 200; trial++) {
      const sizes = Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() ** 3 * 400_000));
      const limits = { documents: 1 + Math.floor(random() * 60), bytes: 1 + Math.floor(random() * 2_000_000) };
      const lengths = cutBatches(sizes, limits);
      expect(cutBatches([...sizes], { ...limits })).toEqual(lengths);
      expect(sum(lengths)).toBe(sizes.length);
      let at = 0;
      for (const [i, l] of lengths.entries()) {
        const batch = sizes.slice(at, at + l);
        expect(l).toBeGreaterThanOrEqual(1);
        expect(l).toBeLessThanOrEqual(limits.documents);
        if (l > 1) expect(sum(batch)).toBeLessThanOrEqual(limits.bytes);
        // Greedy: the next document would have broken a limit (so the cut is a function of sizes and limits alone).
        if (i < lengths.length - 1) expect(l === limits.documents || sum(batch) + sizes[at + l] > limits.bytes).toBe(true);
        at += l;
      }
    }
  });

  it('refuses limits that cannot hold a document', () => {
    expect(() => cutBatches([1], { documents: 0, bytes: 100 })).toThrow(expect.objectContaining({ code: 'invalid_batch_limits' }));
    expect(() => cutBatches([1], { documents: 1.5, bytes: 100 })).toThrow(/EVAPORATE_BATCH_SIZE/);
    expect(() => cutBatches([1], { documents: 5, bytes: 0 })).toThrow(/EVAPORATE_BATCH_BYTES/);
    expect(() => cutBatches([1], { documents: 5, bytes: Number.NaN })).toThrow(expect.objectContaining({ code: 'invalid_batch_limits' }));
  });
});

describe('a checkpointed cut', () => {
  it('slices the document list it was taken from, and refuses another list', () => {
    expect(sliceBatches([11, 12, 13, 14, 15], [2, 2, 1])).toEqual([[11, 12], [13, 14], [15]]);
    expect(() => sliceBatches([11, 12, 13], [2, 2])).toThrow(expect.objectContaining({ code: 'batch_cut_mismatch' }));
    expect(() => sliceBatches([11, 12], [2, 0])).toThrow(expect.objectContaining({ code: 'batch_cut_mismatch' }));
  });

  it('accepts a stored batch for its own documents (or fewer), not for documents of another cut', () => {
    expect(() => checkBatchOutputs(1, [3, 4, 5], { title: { documentIds: [3, 4, 5] } })).not.toThrow();
    expect(() => checkBatchOutputs(1, [3, 4, 5], { title: { documentIds: [3, 5] } })).not.toThrow();
    expect(() => checkBatchOutputs(1, [3, 4, 5], { title: { documentIds: [3, 4, 5] }, isbn: { documentIds: [5, 6] } })).toThrow(/batch:1 holds "isbn" outputs/);
  });
});

describe('documentBytes', () => {
  it('is the bytes of text and HTML the sandbox is handed, read from stored lengths', async () => {
    const db = openDatabase(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-batches-')), 'b.db'));
    const corpusId = Number(db.prepare("INSERT INTO corpora (name) VALUES ('c')").run().lastInsertRowid);
    const pages = ['0000.htm', '0001.htm', '0002.htm'].map((f) => ({ filename: f, bytes: fs.readFileSync(path.join(swdeDir, 'pages', f)) }));
    const texts = [{ filename: 'note.txt', bytes: Buffer.from('Größe: 12 cm\n'.repeat(50)) }];
    await ingestFiles(db, corpusId, [...pages, ...texts], { settings: loadSettings().ingest });
    const other = Number(db.prepare("INSERT INTO corpora (name) VALUES ('other')").run().lastInsertRowid);
    await ingestFiles(db, other, [texts[0]], { settings: loadSettings().ingest });

    const bytes = repo.documentBytes(db, corpusId);
    const docs = repo.loadDocuments(db, repo.documentSummaries(db, corpusId).map((d) => d.id));
    expect(docs).toHaveLength(4);
    expect([...bytes.keys()].sort()).toEqual(docs.map((d) => d.id).sort());
    for (const d of docs) {
      const raw = db.prepare('SELECT raw FROM documents WHERE id = ?').pluck().get(d.id) as Buffer;
      // Text in UTF-8 bytes (not characters), plus the stored page for HTML.
      expect(bytes.get(d.id)).toBe(Buffer.byteLength(d.text) + (d.html ? raw.length : 0));
    }
    const note = docs.find((d) => !d.html)!;
    expect(bytes.get(note.id)).toBe(Buffer.byteLength(note.text));
    expect(Buffer.byteLength(note.text)).toBeGreaterThan(note.text.length);
    db.close();
  });
});
