import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import tarStream from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { chunkText } from '../src/ingest/chunk.js';
import { detectKind } from '../src/ingest/detect.js';
import { parseHtml } from '../src/ingest/html.js';
import { ingestFile, ingestFiles, type IngestResult } from '../src/ingest/ingest.js';
import { countTokens } from '../src/llm/tokens.js';
import { createCorpus } from '../src/store/corpora.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { getChunks, getDocument, iterateReadyDocuments, readyDocumentIds, readyDocuments } from '../src/store/documents.js';
import { makeZeroPagePdf, makeZip } from './ingest-helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = path.join(root, 'fixtures', 'ingest');
const swde = path.join(root, 'fixtures', 'swde', 'book-christianbook', 'pages');

function setup(overrides: Partial<ReturnType<typeof loadSettings>['ingest']> = {}) {
  const db = openDatabase(':memory:');
  const corpus = createCorpus(db, 'c');
  const base = loadSettings({ databasePath: ':memory:' });
  const settings = { ...base.ingest, ...overrides };
  const ingest = (filename: string, bytes: Buffer) => ingestFile(db, corpus.id, { filename, bytes }, { settings });
  return { db, corpusId: corpus.id, settings, ingest };
}

const count = (db: Db, table: string, where = '1') => db.prepare(`SELECT count(*) FROM ${table} WHERE ${where}`).pluck().get() as number;

function expectOneFailure(results: IngestResult[], code: string): IngestResult {
  expect(results).toHaveLength(1);
  expect(results[0].status).toBe('failed');
  expect(results[0].error?.code).toBe(code);
  expect(results[0].error?.message.length).toBeGreaterThan(10);
  return results[0];
}

async function tarGz(entries: { name: string; data?: string; type?: 'file' | 'symlink'; linkname?: string }[]): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const e of entries) {
    if (e.type === 'symlink') pack.entry({ name: e.name, type: 'symlink', linkname: e.linkname });
    else pack.entry({ name: e.name }, e.data ?? '');
  }
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const p of pack) parts.push(p as Buffer);
  return zlib.gzipSync(Buffer.concat(parts));
}

describe('detection by content', () => {
  it('trusts bytes over names', () => {
    expect(detectKind(Buffer.from('%PDF-1.7\n...'), 'a.txt').kind).toBe('pdf');
    expect(detectKind(Buffer.from('<!DOCTYPE html><html></html>'), 'a.pdf').kind).toBe('html');
    expect(detectKind(makeZip([{ name: 'a.txt', data: Buffer.from('x') }]), 'a.html').kind).toBe('zip');
    expect(detectKind(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0]), 'a.html')).toEqual({ kind: 'binary', formatName: 'PNG image' });
    expect(detectKind(Buffer.from('just words'), 'notes').kind).toBe('text');
  });
});

describe('HTML rendering', () => {
  it('keeps what a person sees: headings, cells, list items; drops script and style', () => {
    const html = `<html><head><title> The  Title </title><style>.x{color:red}</style></head><body>
      <script>var secret = "no";</script><h1>Heading</h1><p>Para  one
      continues</p><ul><li>first</li><li>second <b>bold</b></li><li></li></ul>
      <table><tr><th>ISBN</th><td>978-1</td></tr><tr><td>Pages</td><td>320</td></tr></table>
      <div>a<br>b</div><noscript>enable js</noscript></body></html>`;
    const parsed = parseHtml(Buffer.from(html));
    expect(parsed.title).toBe('The Title');
    expect(parsed.text).toBe('Heading\n\nPara one continues\n\n- first\n- second bold\n\nISBN | 978-1\nPages | 320\n\na\nb');
    expect(parsed.text).not.toMatch(/secret|color|enable js/);
  });

  it('decodes the charset a page declares', () => {
    const bytes = Buffer.concat([Buffer.from('<html><head><meta charset="iso-8859-1"></head><body><p>Caf'), Buffer.from([0xe9]), Buffer.from('</p></body></html>')]);
    expect(parseHtml(bytes).text).toBe('Café');
  });
});

describe('chunking', () => {
  it('covers the text contiguously with exact GPT-2 counts under the bound', () => {
    const text = Array.from({ length: 400 }, (_, i) => `Line ${i}: ${'word '.repeat(i % 17)}end.\n${i % 5 === 0 ? '\n  indented\n' : ''}`).join('') + 'x'.repeat(5000);
    const chunks = chunkText(text, 200);
    expect(chunks[0].start).toBe(0);
    expect(chunks[chunks.length - 1].end).toBe(text.length);
    for (let i = 0; i < chunks.length; i++) {
      if (i > 0) expect(chunks[i].start).toBe(chunks[i - 1].end);
      expect(chunks[i].tokens).toBeLessThanOrEqual(200);
      expect(chunks[i].tokens).toBe(countTokens(text.slice(chunks[i].start, chunks[i].end)));
    }
  });
});

describe('ingestion of good files', () => {
  it('stores a real SWDE page with text, structure and chunks pointing into the text', async () => {
    const { db, ingest, corpusId } = setup({ chunkTokens: 500 });
    const [r] = await ingest('0000.htm', fs.readFileSync(path.join(swde, '0000.htm')));
    expect(r).toMatchObject({ status: 'stored', kind: 'html' });
    const doc = getDocument(db, r.documentId!);
    expect(doc.text).toContain('Know Your Bible: All 66 Books Explained and Applied');
    expect(doc.structure).toMatchObject({ encoding: 'UTF-8' });
    const chunks = getChunks(db, doc.id);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks[chunks.length - 1].endChar).toBe(doc.text!.length);
    const [ready] = readyDocuments(db, corpusId);
    expect(ready.html).toContain('<title>');
    expect(ready.text).toBe(doc.text);
  });

  it('reads a real PDF with page boundaries as character ranges', async () => {
    const { db, ingest } = setup();
    const [r] = await ingest('report.pdf', fs.readFileSync(path.join(fixtures, 'report.pdf')));
    expect(r).toMatchObject({ status: 'stored', kind: 'pdf' });
    const doc = getDocument(db, r.documentId!);
    const pages = (doc.structure as { pages: { page: number; start: number; end: number }[] }).pages;
    expect(pages).toHaveLength(2);
    const page1 = doc.text!.slice(pages[0].start, pages[0].end);
    const page2 = doc.text!.slice(pages[1].start, pages[1].end);
    expect(page1).toContain('Applicant: Acme Medical Devices, Inc.');
    expect(page1).toContain('Product code DQK');
    expect(page2).toContain('Café crème naïve façade.');
    expect(page2).not.toContain('Applicant');
  });

  it('leaves Node builtins alone after loading pdfjs (its core-js would swap in slow polyfills)', async () => {
    const { push } = Array.prototype;
    const { parse, stringify } = JSON;
    const { ingest } = setup();
    await ingest('report.pdf', fs.readFileSync(path.join(fixtures, 'report.pdf')));
    expect(Array.prototype.push).toBe(push);
    expect(JSON.parse).toBe(parse);
    expect(JSON.stringify).toBe(stringify);
    for (const fn of [Array.prototype.push, JSON.parse, JSON.stringify]) expect(Function.prototype.toString.call(fn)).toContain('[native code]');
  });

  it('hands the pipeline ready documents by id list or in pages, never failed ones', async () => {
    const { db, ingest, corpusId } = setup();
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await ingest(`p${i}.html`, Buffer.from(`<html><body><p>page ${i}</p></body></html>`)))[0].documentId!);
    await ingest('bad.txt', Buffer.from([0xff, 0xfe, 0x00, 0xd8]));
    expect(readyDocuments(db, corpusId, { ids: [ids[3], ids[1], 9999] }).map((d) => d.text)).toEqual(['page 3', 'page 1']);
    expect(readyDocuments(db, corpusId, { after: ids[1], limit: 2 }).map((d) => d.id)).toEqual([ids[2], ids[3]]);
    const all = [...iterateReadyDocuments(db, corpusId, 2)];
    expect(all.map((d) => d.id)).toEqual(ids);
    expect(all[0].html).toContain('<p>page 0</p>');
    expect(readyDocumentIds(db, corpusId)).toEqual(ids);
  });

  it('accepts UTF-8 and BOM-marked UTF-16 text', async () => {
    const { db, ingest } = setup();
    const [a] = await ingest('a.txt', Buffer.from('naïve\r\nline two'));
    const [b] = await ingest('b.txt', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('héllo', 'utf16le')]));
    expect(getDocument(db, a.documentId!).text).toBe('naïve\nline two');
    expect(getDocument(db, b.documentId!).text).toBe('héllo');
  });

  it('is idempotent: the same bytes again are a duplicate, not a second document', async () => {
    const { db, ingest } = setup();
    const [first] = await ingest('a.txt', Buffer.from('same'));
    const [again] = await ingest('renamed.txt', Buffer.from('same'));
    expect(again).toMatchObject({ status: 'duplicate', documentId: first.documentId });
    expect(count(db, 'documents')).toBe(1);
  });

  it('unpacks tar.gz archives, refusing links', async () => {
    const { db, ingest } = setup();
    const archive = await tarGz([
      { name: 'docs/a.html', data: '<html><body><p>Alpha</p></body></html>' },
      { name: 'docs/b.txt', data: 'Beta' },
      { name: 'docs/link', type: 'symlink', linkname: '/etc/passwd' },
    ]);
    const results = await ingest('bundle.tar.gz', archive);
    expect(results.map((r) => [r.filename, r.status])).toEqual([
      ['bundle.tar.gz/docs/a.html', 'stored'],
      ['bundle.tar.gz/docs/b.txt', 'stored'],
      ['bundle.tar.gz/docs/link', 'failed'],
    ]);
    expect(results[2].error?.code).toBe('archive_unsafe_entry');
    expect(count(db, 'documents', "status = 'ready'")).toBe(2);
  });
});

describe('bad input: a clear error, the good files land, nothing half-written', () => {
  it('empty file', async () => {
    const { db, ingest } = setup();
    expectOneFailure(await ingest('empty.html', Buffer.alloc(0)), 'empty_file');
    expect(count(db, 'documents', "status = 'ready'")).toBe(0);
  });

  it('a PDF with zero pages', async () => {
    const { db, ingest } = setup();
    expectOneFailure(await ingest('zero.pdf', makeZeroPagePdf()), 'pdf_no_pages');
    expect(count(db, 'chunks')).toBe(0);
  });

  it('a truncated PDF', async () => {
    const { ingest } = setup();
    const pdf = fs.readFileSync(path.join(fixtures, 'report.pdf'));
    expectOneFailure(await ingest('cut.pdf', pdf.subarray(0, Math.floor(pdf.length * 0.6))), 'pdf_truncated');
  });

  it('an encrypted PDF', async () => {
    const { db, ingest } = setup();
    const r = expectOneFailure(await ingest('locked.pdf', fs.readFileSync(path.join(fixtures, 'encrypted.pdf'))), 'pdf_encrypted');
    expect(r.error?.message).toMatch(/password/);
    // Kept as a failed row with its reason, so it can be listed; no text, no chunks.
    expect(getDocument(db, r.documentId!)).toMatchObject({ status: 'failed', text: null, errorCode: 'pdf_encrypted' });
    expect(count(db, 'chunks')).toBe(0);
  });

  it('a "PDF" that is really HTML is read as HTML, with a note', async () => {
    const { db, ingest } = setup();
    const [r] = await ingest('invoice.pdf', Buffer.from('<!DOCTYPE html><html><body><h1>Invoice 42</h1></body></html>'));
    expect(r).toMatchObject({ status: 'stored', kind: 'html' });
    expect(r.note).toMatch(/named \.pdf but its content is HTML/);
    expect(getDocument(db, r.documentId!).text).toBe('Invoice 42');
  });

  it('invalid UTF-8 in text', async () => {
    const { ingest } = setup();
    const r = expectOneFailure(await ingest('bad.txt', Buffer.concat([Buffer.from('fine so far '), Buffer.from([0xc3, 0x28]), Buffer.from(' then more')])), 'invalid_encoding');
    expect(r.error?.message).toContain('offset 12');
  });

  it('an HTML page of 20 MB', async () => {
    const { db, ingest } = setup();
    const row = '<tr><td>Title</td><td>Some book</td><td><a href="/x">link</a></td></tr>\n';
    const rows = row.repeat(Math.ceil((20 * 1024 * 1024) / row.length));
    const html = Buffer.from(`<html><body><h1>Big</h1><table>${rows}</table><p>THE END</p></body></html>`);
    expect(html.length).toBeGreaterThan(20 * 1024 * 1024);
    const [r] = await ingest('big.html', html);
    expect(r.status).toBe('stored');
    const doc = getDocument(db, r.documentId!);
    expect(doc.text!.startsWith('Big\n\nTitle | Some book | link\n')).toBe(true);
    expect(doc.text!.endsWith('THE END')).toBe(true);
    const chunks = getChunks(db, doc.id);
    expect(chunks[chunks.length - 1].endChar).toBe(doc.text!.length);
  });

  it('a zip bomb is refused before it is inflated', async () => {
    const { db, ingest } = setup({ archiveMaxCompressionRatio: 100 });
    const bomb = makeZip([{ name: 'zeros.txt', data: Buffer.alloc(30 * 1024 * 1024, 0x20) }]);
    expect(bomb.length).toBeLessThan(100 * 1024);
    const r = expectOneFailure(await ingest('bomb.zip', bomb), 'archive_bomb');
    expect(r.error?.message).toMatch(/zip bomb/);
    expect(count(db, 'documents', "status = 'ready'")).toBe(0);
  });

  it('an archive expanding past the total limit', async () => {
    const { ingest } = setup({ archiveMaxTotalBytes: 1000 });
    const zip = makeZip([{ name: 'a.txt', data: Buffer.from('a'.repeat(800)) }, { name: 'b.txt', data: Buffer.from('b'.repeat(800)) }]);
    expectOneFailure(await ingest('two.zip', zip), 'archive_too_large');
  });

  it('a tar.gz bomb is stopped while it inflates', async () => {
    const { db, ingest } = setup({ archiveMaxCompressionRatio: 100 });
    const bomb = await tarGz([{ name: 'spaces.txt', data: ' '.repeat(40 * 1024 * 1024) }]);
    expect(bomb.length).toBeLessThan(200 * 1024);
    const r = expectOneFailure(await ingest('bomb.tar.gz', bomb), 'archive_bomb');
    expect(r.error?.message).toMatch(/decompression bomb/);
    expect(count(db, 'documents', "status = 'ready'")).toBe(0);
  });

  it('a zip with more entries than the limit is refused whole, from its directory, before any entry is read', async () => {
    const { db, ingest } = setup({ archiveMaxEntries: 3 });
    const zip = makeZip(Array.from({ length: 5 }, (_, i) => ({ name: `e${i}.txt`, data: Buffer.from(`entry ${i}`) })));
    const r = expectOneFailure(await ingest('many.zip', zip), 'archive_too_many_entries');
    expect(r.error?.message).toContain('more than 3 files');
    expect(count(db, 'documents')).toBe(0);
  });

  it('a tar.gz with ../ and absolute paths: those entries are skipped, the rest land', async () => {
    const { db, ingest } = setup();
    const archive = await tarGz([
      { name: '../../etc/evil.txt', data: 'escape' },
      { name: '/abs.txt', data: 'absolute' },
      { name: 'ok/good.txt', data: 'good text' },
    ]);
    const results = await ingest('paths.tar.gz', archive);
    expect(results.map((r) => r.error?.code ?? r.status)).toEqual(['archive_unsafe_path', 'archive_unsafe_path', 'stored']);
    expect(db.prepare('SELECT text FROM documents WHERE status = ?').pluck().all('ready')).toEqual(['good text']);
  });

  it('a zip with ../ and absolute paths: those entries are skipped, the rest land', async () => {
    const { db, ingest } = setup();
    const zip = makeZip([
      { name: '../../etc/evil.txt', data: Buffer.from('escape') },
      { name: '/abs.txt', data: Buffer.from('absolute') },
      { name: 'ok/good.txt', data: Buffer.from('good text') },
    ]);
    const results = await ingest('paths.zip', zip);
    expect(results.map((r) => r.status)).toEqual(['failed', 'failed', 'stored']);
    expect(results[0].error?.code).toBe('archive_unsafe_path');
    expect(results[1].error?.code).toBe('archive_unsafe_path');
    expect(results[2].filename).toBe('paths.zip/ok/good.txt');
    expect(db.prepare('SELECT text FROM documents WHERE status = ?').pluck().all('ready')).toEqual(['good text']);
  });

  it('an archive nested ten deep stops at the depth limit', async () => {
    const { db, ingest, settings } = setup();
    let inner = makeZip([{ name: 'deepest.txt', data: Buffer.from('bottom') }]);
    for (let level = 9; level >= 1; level--) inner = makeZip([{ name: `level${level}.zip`, data: inner }, { name: `note${level}.txt`, data: Buffer.from(`note at ${level}`) }]);
    const results = await ingest('level0.zip', inner);
    const failed = results.filter((r) => r.status === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0].error?.code).toBe('archive_too_deep');
    expect(failed[0].error?.message).toContain(`more than ${settings.archiveMaxDepth} deep`);
    // Notes inside the allowed levels land; nothing below the limit does.
    expect(results.filter((r) => r.status === 'stored')).toHaveLength(settings.archiveMaxDepth);
    expect(db.prepare("SELECT count(*) FROM documents WHERE text = 'bottom'").pluck().get()).toBe(0);
  });

  it('a file over the size limit', async () => {
    const { db, ingest } = setup({ maxFileBytes: 1000 });
    const r = expectOneFailure(await ingest('big.txt', Buffer.alloc(5000, 0x61)), 'file_too_large');
    expect(r.error?.message).toContain('1000 bytes');
    expect(count(db, 'documents')).toBe(0);
  });

  it('a batch with bad files stores the good ones and reports each bad one', async () => {
    const { db, corpusId, settings } = setup();
    const files = [
      { filename: 'good1.txt', bytes: Buffer.from('one') },
      { filename: 'empty.txt', bytes: Buffer.alloc(0) },
      { filename: 'image.png', bytes: Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]) },
      { filename: 'good2.html', bytes: Buffer.from('<html><body>two</body></html>') },
    ];
    const results = await ingestFiles(db, corpusId, files, { settings });
    expect(results.map((r) => r.error?.code ?? r.status)).toEqual(['stored', 'empty_file', 'unsupported_type', 'stored']);
    expect(count(db, 'documents', "status = 'ready'")).toBe(2);
  });

  it('a write that fails midway leaves no document and no chunks behind', async () => {
    const { db, ingest } = setup({ chunkTokens: 5 });
    db.exec("CREATE TRIGGER fail_second_chunk BEFORE INSERT ON chunks WHEN NEW.idx = 2 BEGIN SELECT RAISE(ABORT, 'disk trouble'); END");
    const [r] = await ingest('long.txt', Buffer.from('one two three four five six seven eight nine ten eleven twelve thirteen'));
    expect(r.status).toBe('failed');
    expect(r.error?.message).toContain('disk trouble');
    expect(count(db, 'documents', "status = 'ready'")).toBe(0);
    expect(count(db, 'chunks')).toBe(0);
    // After the fault clears, the same upload goes through (the failed record is replaced).
    db.exec('DROP TRIGGER fail_second_chunk');
    const [again] = await ingest('long.txt', Buffer.from('one two three four five six seven eight nine ten eleven twelve thirteen'));
    expect(again.status).toBe('stored');
    expect(count(db, 'documents')).toBe(1);
  });
});
