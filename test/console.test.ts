/**
 * The web console end to end, in headless Chromium against a real service (job runner, sandbox, SQLite file):
 * upload by drag and drop, label two SWDE pages by double-clicking their ISBN, learn the column with no
 * model while the job's progress streams in, open a cell at its evidence in an HTML and in a PDF document,
 * query with SQL, and the API key gate.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { buildConsole, launchBrowser, root, startService, type Service } from './console-helpers.js';
import { makeZip } from './ingest-helpers.js';
import { columnsFor, materializeTable } from '../src/pipeline/materialize.js';
import { insertDocument } from '../src/store/documents.js';

// The callbacks passed to page.evaluate run in the browser; the project compiles without the DOM library,
// so the few browser names they use are declared here, for this file only.
declare const document: any, window: any, DataTransfer: any, File: any, NodeFilter: any, MutationObserver: any, getComputedStyle: any;
type HTMLElement = any;
type HTMLCanvasElement = any;

// Six of the SWDE christianbook fixture pages (fixtures/swde), with their isbn_13 and publisher gold values.
const books = path.join(root, 'fixtures', 'swde', 'book-christianbook', 'pages');
const gold = JSON.parse(fs.readFileSync(path.join(root, 'fixtures', 'console', 'books-gold.json'), 'utf8')) as Record<string, Record<string, string>>;
const pages = ['0000.htm', '0001.htm', '0002.htm', '0003.htm', '0004.htm', '0005.htm'];
const T = { timeout: 30_000 };

let browser: BrowserContext;
let closeBrowser: () => Promise<void>;
const services: Service[] = [];

beforeAll(async () => {
  await buildConsole();
  ({ browser, close: closeBrowser } = await launchBrowser());
}, 180_000);

afterAll(async () => {
  await closeBrowser?.();
  for (const s of services) await s.close();
});

async function service(options: { apiKey?: string; runJobs?: boolean } = {}): Promise<Service> {
  const s = await startService(options);
  services.push(s);
  return s;
}

/** Drops files on the page's drop zone, as a drag from the desktop would. */
async function dropFiles(page: Page, files: { name: string; data: Buffer }[]): Promise<void> {
  const payload = files.map((f) => ({ name: f.name, data: f.data.toString('base64') }));
  const transfer = await page.evaluateHandle((list) => {
    const dt = new DataTransfer();
    for (const f of list) {
      const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], f.name));
    }
    return dt;
  }, payload);
  await page.dispatchEvent('#dropzone', 'drop', { dataTransfer: transfer });
}

/** Double-clicks a word of the document text where it is drawn, the way a person selects it. */
async function doubleClickWord(page: Page, word: string): Promise<void> {
  const box = await page.evaluate((w) => {
    const pre = document.getElementById('doctext')!;
    const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const at = node.textContent!.indexOf(w);
      if (at < 0) continue;
      const range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + w.length);
      // Scroll the page to the text box, then the box (it scrolls on its own) to the word.
      pre.scrollIntoView({ block: 'start' });
      pre.scrollTop += range.getBoundingClientRect().top - pre.getBoundingClientRect().top - pre.clientHeight / 2;
      const r = range.getBoundingClientRect();
      return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
    }
    return null;
  }, word);
  expect(box, `"${word}" is in the document text`).not.toBeNull();
  await page.mouse.dblclick(box!.x, box!.y);
}

async function openDocument(page: Page, base: string, corpus: string, filename: string): Promise<void> {
  await page.goto(`${base}/#/c/${corpus}/documents`);
  await page.click(`#documents a:text-is("${filename}")`);
  await page.waitForSelector('#doctext', T);
  // A PDF's page is drawn above its text; wait for it so the text no longer moves under the mouse.
  if (filename.endsWith('.pdf')) await page.waitForSelector('#pdf-page[data-rendered=true]', T);
}

describe('web console', () => {
  it('serves the page at / and refuses data without the API key when one is set', async () => {
    const s = await service({ apiKey: 'console-secret' });
    expect((await fetch(`${s.url}/`)).status).toBe(200);
    expect((await fetch(`${s.url}/corpora`)).status).toBe(401);
    const page = await browser.newPage();
    await page.goto(`${s.url}/`);
    await page.waitForSelector('input[name=apiKey]', T);
    // The page's own data calls are refused until it has the key.
    expect(await page.evaluate(async () => (await fetch('/corpora')).status)).toBe(401);
    await expect(page.locator('#corpora').count()).resolves.toBe(0);
    await page.fill('input[name=apiKey]', 'wrong');
    await page.click('button:text("Open")');
    await page.waitForSelector('.keyform .error', T);
    expect(await page.textContent('.keyform .error')).toContain('API key');
    await page.fill('input[name=apiKey]', 'console-secret');
    await page.click('button:text("Open")');
    await page.waitForSelector('main[data-ready=true] input[name=corpusName]', T);
    await page.close();
  });

  it('uploads a batch, labels two pages by clicking, learns the column while the job streams progress, and shows a cell at its evidence', async () => {
    const s = await service();
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.log('page error:', e.message));
    await page.goto(`${s.url}/`);
    await page.fill('input[name=corpusName]', 'books');
    await page.click('button:text("Create corpus")');
    await page.waitForSelector('#dropzone', T);

    // Four pages as files, two in a zip, and a password-protected PDF that is refused with its reason.
    const read = (p: string) => fs.readFileSync(path.join(books, p));
    await dropFiles(page, [
      ...pages.slice(0, 4).map((p) => ({ name: p, data: read(p) })),
      { name: 'more.zip', data: makeZip(pages.slice(4).map((p) => ({ name: p, data: read(p) }))) },
      { name: 'encrypted.pdf', data: fs.readFileSync(path.join(root, 'fixtures', 'ingest', 'encrypted.pdf')) },
    ]);
    await page.waitForSelector('#upload-results', T);
    const results = await page.$$eval('#upload-results tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    expect(results.filter((r) => r[1] === 'stored').map((r) => r[0]).sort()).toEqual([...pages.slice(0, 4), 'more.zip/0004.htm', 'more.zip/0005.htm']);
    expect(await page.locator('#documents tbody tr').count()).toBe(6);
    expect(results.find((r) => r[0] === 'encrypted.pdf')?.[3]).toContain('pdf_encrypted');
    expect(await page.textContent('#failed-docs')).toContain('password-protected');
    await page.goto(`${s.url}/#/`);
    await page.waitForSelector('#corpora tr[data-corpus=books]', T);
    expect(await page.textContent('#corpora tr[data-corpus=books] td:nth-child(2)')).toBe('6');
    expect(await page.textContent('#corpora tr[data-corpus=books] td:nth-child(3)')).toBe('1');

    // Label two documents: double-click the ISBN in the text, then "Label as value".
    for (const p of ['0000.htm', '0001.htm']) {
      await openDocument(page, s.url, 'books', p);
      await page.fill('input[name=attribute]', 'isbn_13');
      await doubleClickWord(page, gold.isbn_13[p]);
      await page.waitForSelector(`.selection:has-text("${gold.isbn_13[p]}")`, T);
      await page.click('#label-value');
      await page.waitForSelector(`#doc-labels li:has-text("${gold.isbn_13[p]}")`, T);
      expect(await page.textContent('#doctext mark.label')).toBe(gold.isbn_13[p]);
    }
    // "Not present" records that a page has no value for an attribute.
    await page.fill('input[name=attribute]', 'subtitle');
    await page.click('#label-absent');
    await page.waitForSelector('#doc-labels li:has-text("subtitle: not present")', T);
    const labels = (await (await fetch(`${s.url}/corpora/books/labels?attribute=isbn_13`)).json()) as { labels: { filename: string; values: string[] }[] };
    const absent = (await (await fetch(`${s.url}/corpora/books/labels?attribute=subtitle`)).json()) as { labels: { filename: string; values: string[] }[] };
    expect(absent.labels.map((l) => [l.filename, l.values])).toEqual([['0001.htm', []]]);
    await page.fill('input[name=attribute]', 'isbn_13');
    expect(labels.labels.map((l) => [l.filename, l.values])).toEqual([
      ['0000.htm', [gold.isbn_13['0000.htm']]],
      ['0001.htm', [gold.isbn_13['0001.htm']]],
    ]);

    // Learn the column from the labels (no model is configured) and watch the job's progress stream in.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as any).__progress = seen;
      new MutationObserver(() => {
        const job = document.querySelector('#label-panel .job');
        if (!job) return;
        const entry = `${job.getAttribute('data-state')} ${job.querySelector('.step')?.textContent} ${job.querySelector('.count')?.textContent}`;
        if (seen[seen.length - 1] !== entry) seen.push(entry);
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await page.click('#learn');
    await page.waitForSelector('#label-panel .job[data-state=succeeded]', T);
    await page.waitForSelector('#learned-column', T);
    const progress = (await page.evaluate(() => (window as any).__progress)) as string[];
    expect(progress.length).toBeGreaterThanOrEqual(3); // queued, at least one running step, succeeded
    expect(progress.some((p) => p.startsWith('running step: '))).toBe(true);
    expect(progress[progress.length - 1]).toMatch(/^succeeded /);
    const learned = await page.$$eval('#learned-column tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    expect(Object.fromEntries(learned.map(([file, value]) => [path.basename(file!), value]))).toEqual(gold.isbn_13);

    // The table: open an unlabelled page's cell and see its evidence and the functions that agreed.
    await page.goto(`${s.url}/#/c/books/table`);
    await page.waitForSelector('#results td.cell', T);
    const colour = await page.$eval('#results td.cell[data-column=isbn_13]', (td) => getComputedStyle(td).backgroundColor);
    expect(colour).not.toBe('rgba(0, 0, 0, 0)');
    // Sorting by a column's header, both ways.
    const sorted = Object.values(gold.isbn_13).sort();
    const firstIsbn = () => page.textContent('#results tbody tr:first-child td.cell[data-column=isbn_13]');
    await page.click('#results th[data-column=isbn_13]');
    await page.waitForSelector('#results th[data-column=isbn_13]:has-text("▲")', T);
    await expect.poll(firstIsbn, T).toBe(sorted[0]);
    await page.click('#results th[data-column=isbn_13]');
    await page.waitForSelector('#results th[data-column=isbn_13]:has-text("▼")', T);
    await expect.poll(firstIsbn, T).toBe(sorted[sorted.length - 1]);
    expect(await page.textContent('#results th[data-column=isbn_13] .colstat')).toBe('100% filled');

    const docId = (await s.db.prepare("SELECT id FROM documents WHERE filename = '0003.htm'").get()) as { id: number };
    await page.click(`#results td.cell[data-document="${docId.id}"][data-column=isbn_13] a`);
    await page.waitForSelector('#cell-panel', T);
    expect(await page.textContent('mark.evidence')).toBe(gold.isbn_13['0003.htm']);
    const text = (await page.textContent('#doctext'))!;
    const before = text.slice(0, text.indexOf(gold.isbn_13['0003.htm']));
    expect(before.endsWith('ISBN-13: ')).toBe(true);
    expect(await page.locator('#cell-panel details.fn').count()).toBeGreaterThanOrEqual(1);
    await page.click('#cell-panel details.fn summary');
    expect(await page.textContent('#cell-panel details.fn pre.code')).toMatch(/function|=>/);
    expect(await page.textContent('#cell-panel details.fn summary')).toMatch(/learned accuracy (0|1)\.\d{3}/);

    // The SQL box over the read-only endpoint, with the CSV download.
    await page.goto(`${s.url}/#/sql`);
    await page.fill('textarea[name=sql]', "SELECT d.filename, t.isbn_13 FROM corpus_books_1 t JOIN documents d ON d.id = t._document_id WHERE d.filename = 'more.zip/0004.htm'");
    await page.click('button:text("Run")');
    await page.waitForSelector('#sql-result tbody tr', T);
    expect(await page.$$eval('#sql-result tbody td', (tds) => tds.map((td) => td.textContent))).toEqual(['more.zip/0004.htm', gold.isbn_13['0004.htm']]);
    const [download] = await Promise.all([page.waitForEvent('download', T), page.click('button:text("Download CSV")')]);
    const csv = fs.readFileSync((await download.path())!, 'utf8');
    expect(csv.trim().split(/\r?\n/)).toEqual(['filename,isbn_13', `more.zip/0004.htm,${gold.isbn_13['0004.htm']}`]);
    await page.close();
  }, 180_000);

  it('shows a PDF cell on its page with the evidence boxed from pdf.js text positions', async () => {
    const s = await service();
    const page = await browser.newPage();
    const pdfs = ['reports-0.pdf', 'reports-1.pdf', 'reports-2.pdf', 'reports-3.pdf'];
    await page.goto(`${s.url}/`);
    await page.fill('input[name=corpusName]', 'reports');
    await page.click('button:text("Create corpus")');
    await page.waitForSelector('#dropzone', T);
    await page.setInputFiles('#dropzone input[type=file]', pdfs.map((f) => path.join(root, 'fixtures', 'ingest', 'pdf-bench', f)));
    await page.waitForSelector('#upload-results', T);
    expect(await page.locator('#upload-results tr.stored').count()).toBe(4);

    // Label two reports' product code by selecting it in their text, then learn it from the Jobs tab.
    const codes: Record<string, string> = { 'reports-0.pdf': 'DBF', 'reports-1.pdf': 'ZKF' };
    for (const [file, code] of Object.entries(codes)) {
      await openDocument(page, s.url, 'reports', file);
      await page.fill('input[name=attribute]', 'product_code');
      await doubleClickWord(page, code);
      await page.waitForSelector(`.selection:has-text("${code}")`, T);
      await page.click('#label-value');
      await page.waitForSelector(`#doc-labels li:has-text("${code}")`, T);
    }
    await page.goto(`${s.url}/#/c/reports/jobs`);
    // An open extraction needs a model and none is configured: the job fails and says why; retry runs it again.
    await page.click('#start-extraction input[name=mode] >> nth=1');
    await page.click('#start-extraction button[type=submit]');
    await page.waitForSelector('.job[data-state=failed]', T);
    expect(await page.textContent('.job[data-state=failed] .error')).toContain('llm_not_configured');
    const failedJob = await page.getAttribute('.job[data-state=failed]', 'data-job');
    await page.evaluate((id) => {
      const card = document.querySelector(`.job[data-job="${id}"]`);
      const seen: string[] = [];
      (window as any).__retryStates = seen;
      new MutationObserver(() => seen.push(card.getAttribute('data-state'))).observe(card, { attributes: true, attributeFilter: ['data-state'] });
    }, failedJob);
    const jobView = async () => (await (await fetch(`${s.url}/jobs/${failedJob}`)).json()) as { state: string; finishedAt: string };
    const firstRun = await jobView();
    await page.click('.job[data-state=failed] button:text("Retry")');
    // Retried and failed again: a new finish time.
    await expect.poll(async () => { const j = await jobView(); return j.state === 'failed' && j.finishedAt !== firstRun.finishedAt; }, T).toBe(true);
    await page.waitForFunction(() => {
      const seen = (window as any).__retryStates as string[];
      return seen.length >= 2 && seen[seen.length - 1] === 'failed';
    }, undefined, T);
    expect(((await page.evaluate(() => (window as any).__retryStates)) as string[])[0]).toBe('queued');
    expect(await page.textContent(`.job[data-job="${failedJob}"] .error`)).toContain('llm_not_configured');

    await page.click('#start-extraction input[name=mode] >> nth=0');
    await page.fill('input[name=attributes]', 'product_code');
    await page.click('#start-extraction button[type=submit]');
    await page.waitForSelector('.job[data-state=succeeded]', T);
    expect(await page.$$eval('.job[data-state=succeeded] .jobstats span', (spans) => spans.map((x) => x.textContent))).toContain('tokens: 0');

    // The run's attribute health is drawn on the Jobs tab.
    await page.reload();
    await page.waitForSelector('#health-chart circle', T);
    expect(await page.textContent('#health-chart')).toContain('product_code');

    const doc = s.db.prepare("SELECT id, text, structure FROM documents WHERE filename = 'reports-2.pdf'").get() as { id: number; text: string; structure: string };
    // Opened from the document list the PDF shows its first page, unboxed, with page navigation.
    await openDocument(page, s.url, 'reports', 'reports-2.pdf');
    await page.waitForSelector('#pdf-page[data-page="1"] canvas', T);
    expect(await page.locator('#pdf-page .pdf-hl').count()).toBe(0);
    await page.click('#pdf-page button:text("›")');
    await page.waitForSelector('#pdf-page[data-page="2"]', T);

    await page.goto(`${s.url}/#/c/reports/doc/${doc.id}/product_code`);
    await page.waitForSelector('#cell-panel', T);
    const value = (await page.textContent('mark.evidence'))!;
    expect(value).toBe('DJY'); // reports-2's first summary: "Product code DJY"
    await page.waitForSelector('#pdf-page .pdf-hl', T);
    const start = doc.text.indexOf('Product code DJY') + 'Product code '.length;
    const expectedPage = (JSON.parse(doc.structure).pages as { page: number; start: number; end: number }[]).find((p) => start >= p.start && start < p.end)!.page;
    expect(await page.getAttribute('#pdf-page', 'data-page')).toBe(String(expectedPage));
    // The box lies on the drawn page, over drawn text: the canvas holds dark (glyph) pixels inside it.
    const hit = await page.evaluate(() => {
      const el = document.querySelector('#pdf-page .pdf-hl') as HTMLElement;
      const canvas = document.querySelector('#pdf-page canvas') as HTMLCanvasElement;
      const [left, top, width, height] = [el.offsetLeft, el.offsetTop, el.offsetWidth, el.offsetHeight];
      const pixels = canvas.getContext('2d')!.getImageData(left, top, Math.max(1, width), Math.max(1, height)).data;
      let dark = 0;
      for (let i = 0; i < pixels.length; i += 4) if (pixels[i] + pixels[i + 1] + pixels[i + 2] < 300) dark++;
      const inside = left >= 0 && top >= 0 && left + width <= canvas.width && top + height <= canvas.height;
      return { inside, width, height, dark };
    });
    expect(hit.dark).toBeGreaterThan(10);
    expect(hit.inside).toBe(true);
    expect(hit.width).toBeGreaterThan(5);
    expect(hit.height).toBeGreaterThan(5);
    await page.close();
  }, 180_000);

  it('marks empty and low-confidence columns, and cancels a queued job', async () => {
    const s = await service({ runJobs: false });
    // A table as an extraction leaves it: title confident, isbn_13 doubtful, pages empty.
    const corpusId = Number(s.db.prepare("INSERT INTO corpora (name) VALUES ('shelf')").run().lastInsertRowid);
    const docs = ['Title: Kiwi ISBN 9781111111111', 'Title: Mango'].map((text, i) =>
      insertDocument(s.db, { corpusId, filename: `s${i}.html`, contentHash: `s${i}`, kind: 'html', raw: Buffer.from(text), text, structure: {}, chunks: [] }),
    );
    const attribute = (name: string) => Number(s.db.prepare("INSERT INTO attributes (corpus_id, name, origin) VALUES (?, ?, 'user')").run(corpusId, name).lastInsertRowid);
    const [title, isbn, pages] = [attribute('title'), attribute('isbn_13'), attribute('pages')];
    const cell = (d: number, a: number, value: string, confidence: number, span: [number, number]) => ({ documentId: docs[d], attributeId: a, value, origin: 'functions' as const, confidence, functions: [], span });
    materializeTable(s.db, {
      corpusId, table: `corpus_shelf_${corpusId}`, jobId: null, documentIds: docs,
      columns: columnsFor([{ id: title, name: 'title', type: 'text' }, { id: isbn, name: 'isbn_13', type: 'text' }, { id: pages, name: 'pages', type: 'integer' }]),
      cells: [cell(0, title, 'Kiwi', 0.95, [7, 11]), cell(1, title, 'Mango', 0.9, [7, 12]), cell(0, isbn, '9781111111111', 0.3, [17, 30])],
    });
    const page = await browser.newPage();
    await page.goto(`${s.url}/#/c/shelf/table`);
    await page.waitForSelector('#results td.cell', T);
    expect(await page.getAttribute('#results th[data-column=title]', 'class')).toBe('');
    expect(await page.getAttribute('#results th[data-column=isbn_13]', 'class')).toBe('col-low');
    expect(await page.textContent('#results th[data-column=isbn_13] .colstat')).toBe('50% filled, low confidence');
    expect(await page.getAttribute('#results th[data-column=pages]', 'class')).toBe('col-empty');
    expect(await page.textContent('#results th[data-column=pages] .colstat')).toBe('empty column');
    const [low, high] = await Promise.all(
      [docs[0], docs[1]].map((d, i) => page.$eval(`#results td.cell[data-document="${d}"][data-column=${i === 0 ? 'isbn_13' : 'title'}]`, (td) => getComputedStyle(td).backgroundColor)),
    );
    expect(low).not.toBe(high); // red-ish for 0.3, green-ish for 0.9

    // No runner here: the job waits in the queue until it is cancelled.
    await page.goto(`${s.url}/#/c/shelf/jobs`);
    await page.fill('input[name=attributes]', 'title');
    await page.click('#start-extraction button[type=submit]');
    await page.waitForSelector('.job[data-state=queued]', T);
    await page.click('.job[data-state=queued] button:text("Cancel")');
    await page.waitForSelector('.job[data-state=cancelled] button:text("Retry")', T);
    const jobs = (await (await fetch(`${s.url}/jobs`)).json()) as { jobs: { state: string }[] };
    expect(jobs.jobs.map((j) => j.state)).toEqual(['cancelled']);
    await page.close();
  });
});
