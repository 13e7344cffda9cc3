/**
 * The LLM path as a real endpoint exercises it (issue 18), through the fake OpenAI server over real HTTP with
 * the real parser, sandbox, label model and SQLite: schema ranking at the cap, silver labels that are
 * sometimes wrong, list-shaped values, accounting.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { memoryJobContext, runExtraction } from '../src/pipeline/extract-job.js';
import { discoverAttributes, mergeSynonyms, rankSchema } from '../src/pipeline/schema.js';
import { scoreCandidates } from '../src/pipeline/scoring.js';
import { runQuery } from '../src/pipeline/query.js';
import { extractDirect } from '../src/pipeline/direct.js';
import { countTokens } from '../src/llm/tokens.js';
import { jobLlmUsage } from '../src/llm/index.js';
import { sampleDocuments } from '../src/pipeline/sampling.js';
import * as repo from '../src/pipeline/repository.js';
import { documentSummaries } from '../src/pipeline/repository.js';
import type { FakeChatRequest } from './fake-openai.js';
import { fence, scriptModel, SOURCES, startHarness, task, type Harness } from './llm-path-harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('open-mode schema ranking at the attribute cap', () => {
  it('breaks ties by how early the model names an attribute, never by its name, and reports what the cap cut', async () => {
    h = await startHarness({ books: 10 });
    // 16 names on every page: alphabetically, title is the last of them.
    const names = ['title', 'author', 'binding', 'category', 'dimensions', 'edition', 'format', 'genre', 'isbn', 'language', 'pages', 'price', 'publisher', 'rating', 'reviews', 'shipping'];
    scriptModel(h, { attributes: names });
    const docs = h.books.map((b, i) => ({ docId: i + 1, text: `Item ${b.item}` }));
    const found = await mergeSynonyms(h.deps.llm, await discoverAttributes(h.deps.llm, docs));
    expect(found.every((f) => f.support === 10)).toBe(true);
    const ranked = rankSchema(found, 15);
    expect(ranked.kept.map((a) => a.name)).toContain('title');
    expect(ranked.kept[0]!.name).toBe('title');
    expect(ranked.cut.map((a) => a.name)).toEqual(['shipping']);
  });

  it('a job keeps the attribute every page carries and names the cut ones in its result', async () => {
    h = await startHarness({ books: 12 });
    scriptModel(h, { attributes: ['title', 'price', 'binding'], functions: { title: SOURCES.titleRight, price: SOURCES.price } });
    const result = await runExtraction(h.deps, { corpusId: h.corpusId, mode: 'open', maxAttributes: 2, candidates: 4 }, memoryJobContext({ jobId: 1 }));
    expect(result.attributes.map((a) => a.name)).toEqual(['title', 'price']);
    expect(result.cut).toEqual(['binding']);
    expect(result.attributes.find((a) => a.name === 'title')!.filled).toBe(12);
  });
});

describe('one wrong silver label', () => {
  it('with 9 right labels and 1 wrong, ends with the right column at high confidence and reports the overruled label', async () => {
    // Which documents the sample holds does not depend on where format notes go (pages have equal sizes).
    const probe = await startHarness({ books: 30, subtitled: () => false });
    const sampled = sampleDocuments(documentSummaries(probe.db, probe.corpusId), 10, 0).map((id) => probe.books[id - 1]!.item);
    await probe.close();
    // One sampled page carries a format note (its silver label keeps it: the wrong label), and so do many
    // pages outside the sample: a function fitted to that label is wrong on all of them.
    const odd = sampled[0]!;
    const subtitled = (i: number) => String(i).padStart(2, '0') === odd || (!sampled.includes(String(i).padStart(2, '0')) && i % 2 === 0);
    h = await startHarness({ books: 30, subtitled });
    // A model copies the convention of the value a prompt shows: the odd label teaches functions that keep the note.
    let served = 0;
    const write = (r: FakeChatRequest, i: number) => {
      const teachesNote = /the value is "[^"]*\(Paperback\)"/.test(r.prompt);
      const list = teachesNote ? SOURCES.titleWithFormat : SOURCES.titleRight;
      return fence(list[(served++ + i) % list.length]!);
    };
    scriptModel(h, { titleWithFormatFor: [odd], write });
    const result = await runExtraction(h.deps, { corpusId: h.corpusId, mode: 'closed', attributes: [{ name: 'title' }], topK: 3, candidates: 6 }, memoryJobContext({ jobId: 3 }));
    const rows = h.db.prepare(`SELECT t._document_id AS id, t.title, p.confidence FROM "${result.table}" t JOIN "${result.provenanceTable}" p ON p._document_id = t._document_id`).all() as { id: number; title: string; confidence: number }[];
    expect(rows).toHaveLength(30);
    for (const row of rows) {
      expect(row.title).toBe(h.books[row.id - 1]!.title);
      expect(row.confidence).toBeGreaterThan(0.9);
    }
    const disputes = result.attributes[0]!.labelDisputes ?? [];
    expect(disputes).toEqual([expect.objectContaining({ documentId: Number(odd) + 1, overruled: true, kind: 'contradicted', consensus: [h.books[Number(odd)]!.title] })]);
  });

  it('scoring keeps the candidates that miss only the one label they contradict, and overrules it', async () => {
    h = await startHarness({ books: 10, subtitled: (i) => i === 4 });
    const docs = repo.loadDocuments(h.db, h.books.map((_, i) => i + 1));
    const silver: Record<number, string[] | null> = {};
    h.books.forEach((b, i) => (silver[i + 1] = [b.subtitle ? b.title + b.subtitle : b.title]));
    // Two functions fit the wrong label; four that return the right form miss it alone. Two may be kept.
    const candidates = [...SOURCES.titleWithFormat, ...SOURCES.titleRight].map((source, i) => ({ id: `c${i}`, source, origin: 'llm' as const, prompt: '' }));
    const sandboxDocs = docs.map((d) => ({ id: d.id, text: d.text, html: d.html }));
    const scored = await scoreCandidates(h.sandbox, candidates, sandboxDocs, silver, 2);
    expect(scored.kept.every((k) => SOURCES.titleRight.includes(k.source))).toBe(true);
    expect(scored.disputes).toEqual([expect.objectContaining({ documentId: 5, overruled: true })]);
    // A label a person gave is never overruled: the candidates that fit it stay on top.
    const trusted = await scoreCandidates(h.sandbox, candidates, sandboxDocs, silver, 2, { trusted: new Set([5]) });
    expect(trusted.disputes).toEqual([expect.objectContaining({ documentId: 5, overruled: false })]);
    expect(trusted.kept.some((k) => SOURCES.titleWithFormat.includes(k.source))).toBe(true);
  });
});

describe('list-shaped values', () => {
  it('agree across shapes, keep every value as a list with a span each, and leave a title with ";" whole', async () => {
    h = await startHarness({ books: 18 });
    scriptModel(h, {
      functions: {
        title: SOURCES.titleRight.slice(0, 2),
        // a list, one "A; B" string, a list with a repeat: the same answer three ways
        author: [...SOURCES.authorList, ...SOURCES.authorJoined, ...SOURCES.authorDuplicated],
        // one rule returns every genre, three return the first one
        genre: [...SOURCES.genreAll, ...SOURCES.genreFirst],
      },
    });
    const result = await runExtraction(
      h.deps,
      { corpusId: h.corpusId, mode: 'closed', attributes: [{ name: 'title' }, { name: 'author' }, { name: 'genre' }], candidates: 8 },
      memoryJobContext({ jobId: 4 }),
    );
    const rows = h.db.prepare(`SELECT * FROM "${result.table}" ORDER BY _document_id`).all() as { _document_id: number; title: string; author: string; genre: string }[];
    expect(rows).toHaveLength(18);
    for (const row of rows) {
      const book = h.books[row._document_id - 1]!;
      expect(row.title).toBe(book.title);
      expect(JSON.parse(row.author)).toEqual(book.authors);
      expect(JSON.parse(row.genre)).toEqual(book.genres);
    }
    expect(rows.some((r) => r.title.includes(';'))).toBe(true);
    const prov = h.db.prepare(`SELECT p._document_id AS id, p.attribute, p.confidence, p.spans, d.text FROM "${result.provenanceTable}" p JOIN documents d ON d.id = p._document_id`).all() as { id: number; attribute: string; confidence: number; spans: string; text: string }[];
    for (const p of prov.filter((x) => x.attribute !== 'title')) {
      const book = h.books[p.id - 1]!;
      const values = p.attribute === 'author' ? book.authors : book.genres;
      const spans = JSON.parse(p.spans) as [number, number][];
      expect(spans.map(([s, e]) => p.text.slice(s, e))).toEqual(values);
      expect(p.confidence).toBeGreaterThan(0.9);
    }
    // The query path renders list columns as arrays, from the JSON the table holds.
    const q = await runQuery(h.db, { sql: `SELECT title, author, genre FROM "${result.table}" ORDER BY _document_id` }, { timeoutMs: 10_000, maxRows: 100 });
    expect(q.rows[3]).toEqual([h.books[3]!.title, h.books[3]!.authors, h.books[3]!.genres]);
    expect(q.rows[0]![1]).toEqual(h.books[0]!.authors);
  });
});

describe('direct extraction of long values', () => {
  it('gives a description room, and asks again with more when an answer is cut at max_tokens', async () => {
    h = await startHarness({ books: 2 });
    const description = Array.from({ length: 60 }, (_, i) => `sentence ${i} of a long book description.`).join(' ');
    const answer = JSON.stringify({ value: description });
    const needed = countTokens(answer);
    expect(needed).toBeGreaterThan(240);
    expect(needed).toBeLessThan(960);
    h.fake.on((r) => task(r) === 'extract-value', (r) => {
      const room = r.maxTokens ?? 0;
      // A real endpoint stops at max_tokens: the JSON is cut and finish_reason says so.
      return room >= needed ? answer : { texts: [answer.slice(0, room * 3)], finishReason: 'length' };
    });
    const doc = { text: `Item 00\nDescription: ${description}\n` };
    const options = { contextTokens: 4000, maxTokens: 60, maxTokensCeiling: 4000 };
    expect(await extractDirect(h.deps.llm, { name: 'description' }, doc, options)).toEqual([description]);
    const rooms = h.fake.chatRequests.map((r) => r.maxTokens);
    // 4 x 60 for a long-text attribute, then 4 x that after the cut answer.
    expect(rooms).toEqual([240, 960]);
    // A cut answer is never read as a value: with no room left to grow, there is no label.
    h.fake.reset();
    h.fake.on((r) => task(r) === 'extract-value', (r) => ({ texts: [answer.slice(0, 100)], finishReason: 'length' }));
    expect(await extractDirect(h.deps.llm, { name: 'summary_text' }, doc, { ...options, maxTokensCeiling: 240 })).toBeNull();
    expect(h.fake.chatRequests).toHaveLength(1);
  });
});

describe('accounting', () => {
  it("a failed job's counts show the requests actually sent and each failed one", async () => {
    h = await startHarness({ books: 6, settings: (s) => (s.llm = { ...s.llm, maxRetries: 2 }) });
    h.fake.otherwise('never').fault({ status: 503 }, { times: 1000 });
    await expect(runExtraction(h.deps, { corpusId: h.corpusId, mode: 'closed', attributes: [{ name: 'title' }] }, memoryJobContext({ jobId: 7 }))).rejects.toMatchObject({ code: 'llm_server_error' });
    const usage = jobLlmUsage(h.db, 7);
    expect(usage.requests).toBe(h.fake.chatRequests.length);
    expect(usage.requests).toBe(usage.calls * 3);
    expect(usage).toMatchObject({ errors: usage.requests, failedCalls: usage.calls, cacheHits: 0 });
  });

  it('a byte-identical request served from the cache is a cache hit, not a new paid call', async () => {
    h = await startHarness({ books: 6 });
    scriptModel(h, { functions: { title: SOURCES.titleRight } });
    const params = { corpusId: h.corpusId, mode: 'closed' as const, attributes: [{ name: 'title' }], candidates: 4 };
    await runExtraction(h.deps, params, memoryJobContext({ jobId: 8 }));
    const sent = h.fake.chatRequests.length;
    const again = await runExtraction(h.deps, params, memoryJobContext({ jobId: 9 }));
    expect(h.fake.chatRequests).toHaveLength(sent);
    const usage = jobLlmUsage(h.db, 9);
    expect(usage).toMatchObject({ requests: 0, errors: 0, promptTokens: 0, costUsd: 0 });
    expect(usage.cacheHits).toBe(usage.calls);
    expect(again.llm).toMatchObject({ cachedCalls: again.llm.calls, promptTokens: 0 });
    // What the method needed is still counted, the same way as the direct-extraction estimate.
    expect(usage.countedPromptTokens).toBe(jobLlmUsage(h.db, 8).countedPromptTokens);
  });
});
