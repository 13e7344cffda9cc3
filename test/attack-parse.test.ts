/**
 * Findings 2 and 4: crafted files that cost minutes to parse on the main thread. Parsing and chunking run in
 * worker threads with limits, so each file gets its own clean error, the batch goes on, and /health keeps
 * answering throughout (the worst probe latency is printed for the record).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { closeParsePool } from '../src/ingest/parse-pool.js';
import { flatPagePdf, form, nestedHtml, startServer, whileProbingHealth, type Server } from './attack-helpers.js';

const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
  await closeParsePool();
});

let corpora = 0;
async function upload(server: Server, files: { name: string; data: Buffer | string }[]) {
  const name = `c${++corpora}`;
  await server.json('/corpora', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
  return whileProbingHealth(server.url, () => server.json(`/corpora/${name}/documents`, { method: 'POST', body: form(files) }));
}

const codes = (body: any) => body.results.map((r: any) => r.error?.code ?? r.status);

describe('parsing under attack', () => {
  it('HTML nested 200,000 deep is refused as too_deep; the next file is stored', async () => {
    const server = await startServer();
    servers.push(server);
    const { result, worstMs, probes } = await upload(server, [
      { name: 'deep.html', data: nestedHtml(200_000) },
      { name: 'fine.html', data: '<html><body><p>fine</p></body></html>' },
    ]);
    console.log(`deep HTML: worst /health ${worstMs.toFixed(1)} ms over ${probes} probes`);
    expect(result.status).toBe(201);
    expect(codes(result.body)).toEqual(['too_deep', 'stored']);
    expect(result.body.results[0].error.message).toContain('EVAPORATE_HTML_MAX_DEPTH');
    expect(worstMs).toBeLessThan(2000);
  }, 60_000);

  it('a PDF with 20,000 pages in a flat tree is refused as too_many_pages before any page is read', async () => {
    const server = await startServer();
    servers.push(server);
    const { result, worstMs, probes } = await upload(server, [
      { name: 'pages.pdf', data: flatPagePdf(20_000) },
      { name: 'notes.txt', data: 'plain notes' },
    ]);
    console.log(`20,000-page PDF (page cap): worst /health ${worstMs.toFixed(1)} ms over ${probes} probes`);
    expect(codes(result.body)).toEqual(['too_many_pages', 'stored']);
    expect(result.body.results[0].error.message).toContain('EVAPORATE_PDF_MAX_PAGES');
    expect(worstMs).toBeLessThan(2000);
  }, 60_000);

  it('past the wall-clock limit the parse worker is terminated (parse_timeout); the pool then parses the next file', async () => {
    const server = await startServer((s) => ({ ...s, ingest: { ...s.ingest, pdfMaxPages: 0, parseTimeoutMs: 1500 } }));
    servers.push(server);
    const t0 = performance.now();
    const { result, worstMs, probes } = await upload(server, [
      { name: 'slow.pdf', data: flatPagePdf(20_000) },
      { name: 'after.html', data: '<html><body><h1>after</h1></body></html>' },
    ]);
    const took = performance.now() - t0;
    console.log(`20,000-page PDF (no page cap, 1.5 s limit): worst /health ${worstMs.toFixed(1)} ms over ${probes} probes, upload ${took.toFixed(0)} ms`);
    expect(codes(result.body)).toEqual(['parse_timeout', 'stored']);
    expect(result.body.results[0].error.message).toContain('EVAPORATE_PARSE_TIMEOUT_MS');
    expect(took).toBeLessThan(30_000);
    expect(worstMs).toBeLessThan(2000);
  }, 60_000);

  it('a large legal one-line text is chunked off the main thread and stored', async () => {
    const server = await startServer();
    servers.push(server);
    const { result, worstMs, probes } = await upload(server, [{ name: 'line.txt', data: 'word '.repeat(2_000_000) }]);
    console.log(`10 MB one-line text: worst /health ${worstMs.toFixed(1)} ms over ${probes} probes`);
    expect(codes(result.body)).toEqual(['stored']);
    expect(probes).toBeGreaterThan(3);
    expect(worstMs).toBeLessThan(2000);
  }, 60_000);
});
