/**
 * The web console's weight and speed: KB of JS/CSS the first page load fetches (raw and gzip), the PDF viewer
 * loaded on demand, and time to first render in headless Chromium against a local service (cold cache, a new
 * browser context per run): the corpora list, and a result table page with its cells.
 * With EVAPORATE_SCREENSHOTS=<dir> it also writes the README's screenshots there.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium, type Browser } from 'playwright-core';
import { buildConsole, chromiumPath, root, startService, type Service } from '../test/console-helpers.js';
import type { BenchResult } from './lib.js';

// page callbacks run in the browser; the project compiles without the DOM library.
declare const window: any, document: any, MutationObserver: any;

const RUNS = 7;
const dist = path.join(root, 'web', 'dist');
const kb = (n: number) => Math.round(n / 102.4) / 10;

function weight(files: string[]) {
  const bytes = files.map((f) => fs.readFileSync(path.join(dist, f)));
  return { raw: bytes.reduce((s, b) => s + b.length, 0), gzip: bytes.reduce((s, b) => s + zlib.gzipSync(b).length, 0) };
}

async function post(url: string, body: unknown) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return res.json() as Promise<any>;
}

async function waitJob(base: string, id: number) {
  for (;;) {
    const job = (await (await fetch(`${base}/jobs/${id}`)).json()) as any;
    if (['succeeded', 'failed', 'cancelled'].includes(job.state)) {
      if (job.state !== 'succeeded') throw new Error(`job ${id} ${job.state}: ${JSON.stringify(job.error)}`);
      return job;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function upload(base: string, corpus: string, files: string[]) {
  const form = new FormData();
  for (const f of files) form.append('file', new Blob([fs.readFileSync(f)]), path.basename(f));
  await post(`${base}/corpora`, { name: corpus });
  const res = await fetch(`${base}/corpora/${corpus}/documents`, { method: 'POST', body: form });
  return (await res.json()) as any;
}

/** Two corpora with learned tables: six SWDE book pages (isbn_13, publisher) and four PDF reports (product code). */
async function seed(s: Service) {
  const books = path.join(root, 'fixtures', 'swde', 'book-christianbook', 'pages');
  const gold = JSON.parse(fs.readFileSync(path.join(root, 'fixtures', 'console', 'books-gold.json'), 'utf8'));
  await upload(s.url, 'books', ['0000', '0001', '0002', '0003', '0004', '0005'].map((p) => path.join(books, `${p}.htm`)));
  for (const attribute of ['isbn_13', 'publisher'])
    for (const p of ['0000.htm', '0002.htm']) await post(`${s.url}/corpora/books/labels`, { document: p, attribute, value: gold[attribute][p] });
  await waitJob(s.url, (await post(`${s.url}/corpora/books/extractions`, { mode: 'closed', attributes: ['isbn_13', 'publisher'] })).id);
  const pdfs = ['reports-0.pdf', 'reports-1.pdf', 'reports-2.pdf', 'reports-3.pdf'].map((f) => path.join(root, 'fixtures', 'ingest', 'pdf-bench', f));
  await upload(s.url, 'reports', pdfs);
  await post(`${s.url}/corpora/reports/labels`, {
    labels: [
      { document: 'reports-0.pdf', attribute: 'product_code', value: 'DBF' },
      { document: 'reports-1.pdf', attribute: 'product_code', value: 'ZKF' },
    ],
  });
  await waitJob(s.url, (await post(`${s.url}/corpora/reports/extractions`, { mode: 'closed', attributes: ['product_code'] })).id);
}

/** Milliseconds from navigation start until `selector` is in the DOM, recorded by the page itself. */
async function firstRender(browser: Browser, url: string, selector: string): Promise<number> {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  await page.addInitScript((sel: string) => {
    const w = window as any;
    new MutationObserver((_m: unknown, observer: { disconnect(): void }) => {
      if (document.querySelector(sel)) {
        w.__rendered = performance.now();
        observer.disconnect();
      }
    }).observe(document, { subtree: true, childList: true });
  }, selector);
  await page.goto(url);
  await page.waitForSelector(selector, { timeout: 30_000 });
  const ms = (await page.evaluate(() => (window as any).__rendered)) as number;
  await context.close();
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function screenshots(browser: Browser, s: Service, dir: string) {
  fs.mkdirSync(dir, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 760 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const docId = (name: string) => (s.db.prepare('SELECT id FROM documents WHERE filename = ?').get(name) as { id: number }).id;
  await page.goto(`${s.url}/#/c/books/table`);
  await page.waitForSelector('#results td.cell');
  await page.screenshot({ path: path.join(dir, 'console-table.png') });
  await page.goto(`${s.url}/#/c/books/doc/${docId('0003.htm')}/isbn_13`);
  await page.waitForSelector('#cell-panel details.fn');
  await page.click('#cell-panel details.fn summary');
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(dir, 'console-evidence.png') });
  await page.goto(`${s.url}/#/c/reports/doc/${docId('reports-2.pdf')}/product_code`);
  await page.waitForSelector('#pdf-page .pdf-hl');
  await page.screenshot({ path: path.join(dir, 'console-pdf.png') });
  await context.close();
}

export default async function consoleBench(): Promise<BenchResult> {
  await buildConsole();
  const index = fs.readFileSync(path.join(dist, 'index.html'), 'utf8');
  const initialAssets = [...index.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1]);
  const all = fs.readdirSync(path.join(dist, 'assets')).map((f) => `assets/${f}`);
  const lazy = all.filter((f) => !initialAssets.includes(f));
  const first = weight(['index.html', ...initialAssets]);
  const onDemand = weight(lazy);

  const s = await startService();
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    await seed(s);
    const corpora: number[] = [];
    const table: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      corpora.push(await firstRender(browser, `${s.url}/`, '#corpora tr[data-corpus]'));
      table.push(await firstRender(browser, `${s.url}/#/c/books/table`, '#results td.cell'));
    }
    const shots = process.env.EVAPORATE_SCREENSHOTS;
    if (shots) await screenshots(browser, s, path.resolve(shots));
    const firstKb = kb(first.gzip);
    return {
      name: 'console',
      rows: [
        { what: 'first load (html, js, css)', files: 1 + initialAssets.length, kb: kb(first.raw), gzip_kb: firstKb },
        { what: 'PDF viewer, on demand (pdf.js + worker)', files: lazy.length, kb: kb(onDemand.raw), gzip_kb: kb(onDemand.gzip) },
        { what: `first render: corpora list (median of ${RUNS}, ms)`, files: '', kb: Math.round(median(corpora)), gzip_kb: '' },
        { what: `first render: table with cells (median of ${RUNS}, ms)`, files: '', kb: Math.round(median(table)), gzip_kb: '' },
      ],
      targets: {
        'first load <= 100 KB gzip': firstKb <= 100,
        'corpora list rendered <= 1000 ms': median(corpora) <= 1000,
        'table rendered <= 1500 ms': median(table) <= 1500,
      },
      notes: ['The service sends assets uncompressed (no compression plugin); gzip figures are what a compressing proxy would send.', 'The first-render times include the API calls the page makes (GET /corpora; GET /corpora/books/table/rows).'],
      extra: { initialAssets, lazy, corporaMs: corpora, tableMs: table },
    };
  } finally {
    await browser.close();
    await s.close();
  }
}
