import { describe, expect, it } from 'vitest';
import { sampleDocuments } from '../src/pipeline/sampling.js';
import { parsePlainGold, parseSwdeGroundtruth, attributesMatch } from '../src/pipeline/eval.js';
import { columnsFor, findSpan, inferType, resultTableName, safeIdentifier, typedValue } from '../src/pipeline/materialize.js';
import { canonicalName, rankAttributes } from '../src/pipeline/schema.js';
import { normalizeSource, sourceHash } from '../src/pipeline/synthesis.js';
import { passages, rankPassages, selectContext } from '../src/pipeline/retrieval.js';
import { parseExtractRequest } from '../src/pipeline/service.js';
import { sampleScore, selectTop } from '../src/pipeline/scoring.js';
import { EvaporateError } from '../src/errors.js';
import { runAttributes, runBatch } from '../src/pipeline/aggregation.js';
import { createSandbox } from '../src/sandbox/index.js';

describe('sampling', () => {
  const docs = Array.from({ length: 100 }, (_, i) => ({ id: i + 1, filename: `${i % 2 ? 'a' : 'b'}/${i}.htm`, byteSize: (i * 37) % 1000 }));
  it('is deterministic per seed, never repeats, spreads over sources and sizes', () => {
    const s = sampleDocuments(docs, 10, 7);
    expect(sampleDocuments(docs, 10, 7)).toEqual(s);
    expect(new Set(s).size).toBe(10);
    expect(sampleDocuments(docs, 10, 8)).not.toEqual(s);
    const picked = docs.filter((d) => s.includes(d.id));
    expect(picked.filter((d) => d.filename.startsWith('a/'))).toHaveLength(5);
    const sizes = picked.map((d) => d.byteSize).sort((a, b) => a - b);
    expect(sizes[0]).toBeLessThan(250);
    expect(sizes[9]).toBeGreaterThan(750);
    expect(sampleDocuments(docs.slice(0, 3), 10, 1)).toEqual([1, 2, 3]);
  });
});

describe('retrieval', () => {
  it('ranks the passage that names the attribute first and keeps document order in the context', () => {
    const text = 'Menu\nHome\nCart\n\n' + 'filler line\n'.repeat(200) + 'Publisher: Zondervan\n' + 'more filler\n'.repeat(200);
    const ps = passages(text, 400);
    const best = rankPassages(ps.map((p) => text.slice(p.start, p.end)), ['publisher'])[0];
    expect(text.slice(ps[best].start, ps[best].end)).toContain('Publisher: Zondervan');
    expect(selectContext(text, ['publisher'], 100)).toContain('Publisher: Zondervan');
  });
});

describe('schema', () => {
  it('merges case, plural and punctuation variants, ranks by support', () => {
    expect(canonicalName('Authors')).toBe('author');
    expect(canonicalName('ISBN-13')).toBe('isbn_13');
    expect(canonicalName('publicationDate')).toBe('publication_date');
    expect(canonicalName('Categories')).toBe('category');
    const ranked = rankAttributes([{ name: 'a', support: 1, aliases: [] }, { name: 'b', support: 5, aliases: [] }, { name: 'c', support: 3, aliases: [] }], 2, 2);
    expect(ranked.map((r) => r.name)).toEqual(['b', 'c']);
  });
});

describe('synthesis dedupe', () => {
  it('treats sources that differ only in comments and whitespace as one', () => {
    const a = 'function extract(text) {\n  // find it\n  return text.match(/x: (.*)/)[1];\n}';
    const b = 'function extract(text){ return text.match(/x: (.*)/)[1]; }';
    expect(normalizeSource(a)).toBe(normalizeSource(b));
    expect(sourceHash(a)).toBe(sourceHash(b));
    expect(sourceHash(a)).not.toBe(sourceHash(b.replace('x:', 'y:')));
  });
});

describe('scoring', () => {
  it('scores agreement with silver labels and drops empty or failing candidates', () => {
    expect(sampleScore(null, null)).toBe(1);
    expect(sampleScore(['Zondervan'], null)).toBe(0);
    expect(sampleScore(['The Zondervan'], ['zondervan'])).toBe(1);
    const c = (id: string, score: number, errors: number, nonEmpty: number) => ({ id, source: '', origin: 'llm' as const, prompt: '', score, errors, nonEmpty });
    const kept = selectTop([c('a', 0.5, 0, 5), c('b', 0.9, 0, 5), c('empty', 0.8, 0, 0), c('broken', 0.7, 6, 4), c('zero', 0, 0, 3)], 10, 10);
    expect(kept.map((k) => k.id)).toEqual(['b', 'a']);
  });
});

describe('materialization helpers', () => {
  it('derives safe, unique identifiers', () => {
    expect(resultTableName('Christian "books"; DROP TABLE x', 3)).toBe('corpus_christian_books_drop_table_x_3');
    expect(safeIdentifier('123abc')).toBe('col_123abc');
    expect(safeIdentifier('sqlite_master')).toBe('col_sqlite_master');
    expect(columnsFor([{ id: 1, name: 'Title', type: 'text' }, { id: 2, name: 'title!', type: 'text' }, { id: 3, name: '_document_id', type: 'text' }]).map((c) => c.column)).toEqual(['title', 'title_2', 'document_id']);
  });
  it('infers column types and converts values', () => {
    expect(inferType(['12', '1,200'])).toBe('integer');
    expect(inferType(['12.5', '3'])).toBe('real');
    expect(inferType(['9781602600157'])).toBe('text');
    expect(inferType(['March 3, 2010', '2011-01-02'])).toBe('date');
    expect(typedValue('March 3, 2010', 'date')).toBe('2010-03-03');
    expect(typedValue('1,200', 'integer')).toBe(1200);
  });
  it('finds the span of a value despite case and whitespace differences', () => {
    const text = 'Title: The  Bridge\nof Peace\nBy: X';
    expect(findSpan(text, 'The Bridge of Peace')).toEqual([7, 27]);
    expect(findSpan(text, 'by: x')).toEqual([28, 33]);
    expect(findSpan(text, 'absent')).toBeNull();
  });
});

describe('gold formats', () => {
  it('reads SWDE ground truth, JSON and CSV', () => {
    const swde = parseSwdeGroundtruth('\uFEFFbook\tsite\tauthor\n2\t2\t3\t2\n0000\t2\tA One\tB Two\n0001\t1\t<NULL>\n');
    expect(swde.get('author')!.get('0000')).toEqual(['A One', 'B Two']);
    expect(swde.get('author')!.get('0001')).toEqual([]);
    const json = parsePlainGold(JSON.stringify({ 'pages/0000.htm': { title: 'T', author: ['A', 'B'] } }), 'json');
    expect(json.get('author')!.get('0000')).toEqual(['A', 'B']);
    const list = parsePlainGold(JSON.stringify([{ filename: 'x.pdf', price: 3 }]), 'json');
    expect(list.get('price')!.get('x')).toEqual(['3']);
    const csv = parsePlainGold('document,title,author\r\n0000.htm,"Hello, World",A|B\r\n', 'csv');
    expect(csv.get('title')!.get('0000')).toEqual(['Hello, World']);
    expect(csv.get('author')!.get('0000')).toEqual(['A', 'B']);
    expect(() => parsePlainGold('title\nx\n', 'csv')).toThrow(EvaporateError);
  });
  it('matches discovered attribute names to gold ones', () => {
    expect(attributesMatch('Authors', 'author')).toBe(true);
    expect(attributesMatch('isbn', 'isbn_13')).toBe(true);
    expect(attributesMatch('price', 'publisher')).toBe(false);
  });
});

describe('extraction requests', () => {
  it('validates mode, attributes and limits with clear errors', () => {
    expect(parseExtractRequest(1, { attributes: ['title', { name: 'price', type: 'real' }] }).params).toMatchObject({ mode: 'closed', attributes: [{ name: 'title' }, { name: 'price', type: 'real' }] });
    expect(parseExtractRequest(1, {}).params.mode).toBe('open');
    expect(() => parseExtractRequest(1, { mode: 'closed' })).toThrow(/attributes/);
    expect(() => parseExtractRequest(1, { attributes: ['a;drop'] })).toThrow(EvaporateError);
    expect(() => parseExtractRequest(1, { mode: 'open', sampleSize: 0 })).toThrow(/sampleSize/);
    expect(parseExtractRequest(1, { mode: 'open', budget: { maxTokens: 1000 } }).budget).toEqual({ maxTokens: 1000, maxUsd: undefined });
  });
});

describe('corpus pass', () => {
  it('keeps each function\'s failure count across batches, so a function that failed too often stays off for the job', async () => {
    const sandbox = createSandbox({ callTimeoutMs: 1000, memoryLimitMb: 64, maxOutputChars: 200, maxFailuresPerFunction: 2, workers: 1 });
    try {
      // fails on the first two batches' documents, would answer on the third's
      const fns = [{ id: 'flaky', source: 'function extract(t) { if (t.startsWith("bad")) throw new Error("no"); return t; }' }];
      const failures = new Map<string, number>();
      await runBatch(sandbox, fns, [{ id: 1, text: 'bad one' }], failures);
      const second = await runBatch(sandbox, fns, [{ id: 2, text: 'bad two' }], failures);
      expect(second.failures).toEqual({ flaky: 2 });
      const third = await runBatch(sandbox, fns, [{ id: 3, text: 'good' }], failures);
      expect(third.values).toEqual([[null]]);
      expect(third.errors).toBe(1);
      // a resumed job starts from the counts its last checkpointed batch recorded
      const resumed = await runBatch(sandbox, fns, [{ id: 3, text: 'good' }], new Map(Object.entries(second.failures!)));
      expect(resumed.values).toEqual([[null]]);
      // without the job's counts the same batch runs the function
      expect((await runBatch(sandbox, fns, [{ id: 3, text: 'good' }])).values).toEqual([[['good']]]);
    } finally {
      await sandbox.close();
    }
  });

  it('runs every attribute in one sandbox call with the outputs and failure counts of one call per attribute', async () => {
    // The limit is above every count this test reaches: whether a function that reaches its limit mid-call
    // still runs on the call's other documents depends on how the pool schedules them, which would make the
    // one-call and the per-attribute runs differ by timing, not by what runAttributes does.
    const sandbox = createSandbox({ callTimeoutMs: 1000, memoryLimitMb: 64, maxOutputChars: 200, maxFailuresPerFunction: 3, workers: 1 });
    let calls = 0;
    const counted = { ...sandbox, run: (...args: Parameters<typeof sandbox.run>) => (calls++, sandbox.run(...args)) };
    // "flaky" is kept for both attributes, with its own failure count in each (one is already at 1).
    const flaky = { id: 'flaky', source: 'function extract(t) { if (t.startsWith("bad")) throw new Error("no"); return t.split(" ")[1]; }' };
    const attributes = [
      { name: 'first', functions: [{ id: 'word', source: 'function extract(t) { return t.split(" ")[0]; }' }, flaky] },
      { name: 'second', functions: [flaky, { id: 'none', source: 'function extract() { return null; }' }] },
      { name: 'empty', functions: [] },
    ];
    const docs = [{ id: 1, text: 'bad one' }, { id: 2, text: 'good two' }];
    try {
      const expected: Record<string, unknown> = {};
      const separate = new Map([['first', new Map<string, number>()], ['second', new Map([['flaky', 1]])], ['empty', new Map<string, number>()]]);
      for (const a of attributes) expected[a.name] = await runBatch(sandbox, a.functions, docs, separate.get(a.name));
      const together = new Map([['first', new Map<string, number>()], ['second', new Map([['flaky', 1]])], ['empty', new Map<string, number>()]]);
      const got = await runAttributes(counted, attributes, docs, together);
      expect(calls).toBe(1);
      expect(got).toEqual(expected);
      expect(together).toEqual(separate);
      expect(got.first.values).toEqual([[['bad'], null], [['good'], ['two']]]);
      expect(got.second.failures).toEqual({ flaky: 2, none: 0 });
      expect(got.first.failures).toEqual({ word: 0, flaky: 1 });
    } finally {
      await sandbox.close();
    }
  });
});
